// lv-bench-malloc: allocator-call benchmark (the cost of LeakVisor's allocator
// breakpoints per malloc/free pair).
//
//   usage: lv-bench-malloc [PAIRS]     PAIRS >= 0, default 2000
//
// Makes exactly PAIRS malloc calls and PAIRS free calls, and nothing else that
// allocates. Sizes vary deterministically over 16..1024 bytes. Up to
// LV_BENCH_SLOTS (64) blocks are live at a time: allocation i goes into slot
// i % 64, after the block that slot held (allocation i - 64) is freed. The
// final phase frees what the slots still hold (min(PAIRS, 64) blocks), so
// nothing is leaked. Every block is written in full before it is freed.
//
// The timed region is everything from the first malloc to the last free
// (clock_gettime(CLOCK_MONOTONIC)). Output, via write(2) (no stdio buffers):
//
//   lv-prog lv-bench-malloc ready pid=PID
//   lv-prog lv-bench-malloc result pairs=N allocations=A frees=F elapsed_ns=T
//   lv-prog lv-bench-malloc done
//
// A and F are the program's own counts of malloc and free calls (both == N).
// Bad arguments: usage message, exit 2; allocation failure: exit 3.
// Expected results: LEAK-PROGRAMS.md ("Benchmark programs").
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LV_NAME "lv-bench-malloc"
#define LV_BENCH_SLOTS 64

// Every allocation is published here, so the compiler cannot drop a
// malloc/free pair.
void *volatile lv_sink;

#include "lv-prog.h"

static void *lv_slots[LV_BENCH_SLOTS];
static unsigned long lv_allocations, lv_frees;

// 16..1024 bytes, deterministic (a 32-bit LCG step of the index).
static size_t lv_size(unsigned long i)
{
    uint32_t x = (uint32_t)i * 1664525u + 1013904223u;
    return 16 + (size_t)((x >> 8) % 1009);
}

__attribute__((noinline)) static void lv_bench_alloc(unsigned long i)
{
    size_t size = lv_size(i);
    void *p = malloc(size); /* LV-ALLOC bench-malloc */
    if (p == NULL)
        lv_fail("allocation");
    lv_allocations++;
    memset(p, (int)(i & 0xff), size);
    lv_sink = p;
    void **slot = &lv_slots[i % LV_BENCH_SLOTS];
    if (*slot != NULL) {
        free(*slot);
        lv_frees++;
    }
    *slot = p;
}

__attribute__((noinline)) static void lv_bench_free_all(void)
{
    for (int s = 0; s < LV_BENCH_SLOTS; s++) {
        if (lv_slots[s] != NULL) {
            free(lv_slots[s]);
            lv_frees++;
            lv_slots[s] = NULL;
        }
    }
    lv_sink = NULL;
}

static uint64_t lv_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        lv_fail("clock_gettime");
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    unsigned long pairs = 2000;
    if (argc > 2 || (argc > 1 && lv_parse(argv[1], &pairs) != 0)) {
        lv_say("usage: %s [PAIRS (default 2000)]\n", LV_NAME);
        return 2;
    }
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    uint64_t start = lv_now_ns();
    for (unsigned long i = 0; i < pairs; i++)
        lv_bench_alloc(i);
    lv_bench_free_all();
    uint64_t elapsed = lv_now_ns() - start;
    if (lv_allocations != pairs || lv_frees != pairs)
        lv_fail("count check");
    lv_say("lv-prog %s result pairs=%lu allocations=%lu frees=%lu elapsed_ns=%llu\n", LV_NAME, pairs,
           lv_allocations, lv_frees, (unsigned long long)elapsed);
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
