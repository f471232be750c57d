#include "ckvm.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

int ckvm_open_dev(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int ckvm_ioctl_ptr(int fd, unsigned long request, void *arg) {
    int rc;
    do { rc = ioctl(fd, request, arg); } while (rc < 0 && errno == EINTR && request != KVM_RUN);
    return rc < 0 ? -errno : rc;
}

int ckvm_ioctl_val(int fd, unsigned long request, unsigned long arg) {
    int rc;
    do { rc = ioctl(fd, request, arg); } while (rc < 0 && errno == EINTR && request != KVM_RUN);
    return rc < 0 ? -errno : rc;
}

void *ckvm_mmap_shared(int fd, size_t length) {
    void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *ckvm_mmap_anonymous(size_t length) {
    void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int ckvm_munmap(void *address, size_t length) { return munmap(address, length) < 0 ? -errno : 0; }
int ckvm_close(int fd) { return close(fd) < 0 ? -errno : 0; }
