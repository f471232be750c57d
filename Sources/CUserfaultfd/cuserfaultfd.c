#define _GNU_SOURCE
#include "cuserfaultfd.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int lv_uffd_open(void) {
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
    if (fd < 0) return -1;
    struct uffdio_api api;
    memset(&api, 0, sizeof api);
    api.api = UFFD_API;
    if (ioctl(fd, UFFDIO_API, &api) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int lv_uffd_register(int fd, void *address, size_t length) {
    struct uffdio_register reg;
    memset(&reg, 0, sizeof reg);
    reg.range.start = (uint64_t)(uintptr_t)address;
    reg.range.len = length;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    return ioctl(fd, UFFDIO_REGISTER, &reg);
}

int lv_uffd_next_fault(int fd, int timeout_ms, uint64_t *address) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ready = poll(&p, 1, timeout_ms);
    if (ready <= 0) return ready < 0 && errno != EINTR ? -1 : 0;
    struct uffd_msg msg;
    ssize_t n = read(fd, &msg, sizeof msg);
    if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (n != (ssize_t)sizeof msg || msg.event != UFFD_EVENT_PAGEFAULT) return 0;
    *address = msg.arg.pagefault.address;
    return 1;
}

int lv_uffd_copy(int fd, void *page_address, const void *source, size_t length) {
    struct uffdio_copy copy;
    memset(&copy, 0, sizeof copy);
    copy.dst = (uint64_t)(uintptr_t)page_address;
    copy.src = (uint64_t)(uintptr_t)source;
    copy.len = length;
    if (ioctl(fd, UFFDIO_COPY, &copy) == 0) return 0;
    if (errno == EEXIST) {
        struct uffdio_range range = {.start = copy.dst, .len = length};
        ioctl(fd, UFFDIO_WAKE, &range);
        errno = EEXIST;
    }
    return -1;
}
