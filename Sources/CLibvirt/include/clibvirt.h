// Thin unsafe layer over libvirt's C API (libvirt-dev): the connection, domain and QEMU monitor
// calls that the Libvirt module wraps. No logic.
#ifndef CLIBVIRT_H
#define CLIBVIRT_H
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

/// Stops libvirt from printing its errors to stderr; callers read virGetLastErrorMessage().
void clibvirt_silence_errors(void);
#endif
