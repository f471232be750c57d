#ifndef CELFDW_H
#define CELFDW_H
// Thin unsafe layer over elfutils: libelf (ELF files) and libdw/libdwfl (DWARF, CFI unwinding).
// No logic here beyond what Swift cannot express (C callbacks, variadic-free wrappers).
#include <libelf.h>
#include <gelf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <elfutils/libdwelf.h>   // dwelf_elf_gnu_build_id
#include <dwarf.h>                // DW_TAG_* and other DWARF constants
#endif
