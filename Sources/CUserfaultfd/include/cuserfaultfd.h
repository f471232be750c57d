// Thin unsafe layer over Linux's userfaultfd (linux/userfaultfd.h): open, register a range for
// missing-page faults, read one fault, resolve it with a copy. No logic.
#ifndef CUSERFAULTFD_H
#define CUSERFAULTFD_H
#include <stddef.h>
#include <stdint.h>

/// A userfaultfd with the API handshake done (close-on-exec, blocking reads); -1 with errno.
int lv_uffd_open(void);
/// Registers [address, address+length) for missing-page faults; 0 or -1 with errno.
int lv_uffd_register(int fd, void *address, size_t length);
/// Waits up to timeout_ms for one page-fault message; 1 with *address set, 0 on timeout or a
/// message that is not a page fault, -1 with errno.
int lv_uffd_next_fault(int fd, int timeout_ms, uint64_t *address);
/// Fills the missing page at page_address with length bytes from source and wakes the faulting
/// threads; 0, or -1 with errno (EEXIST: the page is there already; it is woken anyway).
int lv_uffd_copy(int fd, void *page_address, const void *source, size_t length);
#endif
