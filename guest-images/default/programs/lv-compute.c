/*
 * lv-compute [ITERATIONS]: CPU-bound integer benchmark (no syscalls, no memory
 * traffic) used to compare guest and host speed. Each iteration is one round
 * of a 64-bit xorshift/multiply hash. The default takes roughly 1 s natively.
 * Prints "compute: <iterations> iterations in <ns> ns (checksum <x>)".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    uint64_t iterations = argc > 1 ? strtoull(argv[1], NULL, 0) : 400000000u;
    uint64_t h = 0x9e3779b97f4a7c15u;
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < iterations; i++) {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdu;
        h += i;
    }
    uint64_t elapsed = now_ns() - start;
    printf("compute: %" PRIu64 " iterations in %" PRIu64 " ns (checksum %016" PRIx64 ")\n",
           iterations, elapsed, h);
    return 0;
}
