/*
 * lv-syscalls [COUNT]: performs COUNT getppid() system calls (default 1000000)
 * and prints the total and per-call time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    uint64_t count = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000u;
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < count; i++) syscall(SYS_getppid);
    uint64_t elapsed = now_ns() - start;
    printf("syscalls: %" PRIu64 " getppid calls in %" PRIu64 " ns (%.1f ns/call)\n",
           count, elapsed, count ? (double)elapsed / (double)count : 0.0);
    return 0;
}
