// lv-alloc-clean: allocates and frees blocks through every glibc allocation
// entry point and frees all of them: nothing is outstanding at exit.
//
//   malloc          18 calls: 16 small (8..128 bytes), malloc(0), malloc(262144)
//                   (above the 128 KiB mmap threshold: an mmapped chunk)
//   calloc           9 calls: calloc(k, 24) for k = 1..8, calloc(1, 200000) (mmapped)
//   realloc          8 calls on one block: NULL->10 (acts as malloc), 10->100,
//                   100->1000, 1000->10000, 10000->200000 (mmapped),
//                   200000->5000, 5000->50, 50->60; then free.
//                   realloc(p, 0) is NOT used (glibc frees and returns NULL).
//   reallocarray     3 calls on one block: NULL->10*8, ->100*8, ->3*8; then free
//   posix_memalign   4 calls: alignment 16, 64, 256, 4096, 100 bytes each
//   aligned_alloc    4 calls: (32, 96), (64, 128), (512, 1000), (4096, 4096)
//   memalign         4 calls: (16, 40), (128, 300), (1024, 50), (8192, 8192)
//   valloc           2 calls: 100, 5000 bytes (page aligned)
//   pvalloc          2 calls: 1, 4097 bytes (glibc rounds to 4096 and 8192);
//                   skipped with --no-pvalloc (valgrind 3.19 aborts on pvalloc),
//                   whose two frees then become free(NULL)
//   strdup, strndup  1 call each (they call malloc inside libc): 10 and 5 bytes
//   free            47 calls with a block + 1 free(NULL) (45 + 3 with --no-pvalloc)
//
// Every block is freed; the order of frees differs from the order of
// allocation. Expected results: LEAK-PROGRAMS.md. Allocating lines carry /* LV-ALLOC <tag> */.
#define _GNU_SOURCE
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LV_NAME "lv-alloc-clean"

void *volatile lv_sink;
// Always NULL; read through a volatile so GCC cannot turn realloc(NULL, n)
// into malloc(n) or drop free(NULL).
void *volatile lv_null;
// A string the compiler cannot see through (so strdup stays a call).
const char *volatile lv_text = "leakvisor";

#include "lv-prog.h"

// Checks the block, writes to every byte and publishes the pointer.
__attribute__((noinline)) static void lv_touch(void *p, size_t size, size_t align)
{
    if (p == NULL && size != 0)
        lv_fail("allocation");
    if (align != 0 && ((uintptr_t)p & (align - 1)) != 0)
        lv_fail("alignment");
    if (size != 0)
        memset(p, 0x5a, size);
    lv_sink = p;
}

__attribute__((noinline)) void lv_use_malloc(void)
{
    void *small[16];
    for (int i = 0; i < 16; i++) {
        small[i] = malloc(8 * (size_t)(i + 1)); /* LV-ALLOC clean-malloc */
        lv_touch(small[i], 8 * (size_t)(i + 1), 0);
    }
    void *empty = malloc(0); /* LV-ALLOC clean-malloc-0 */
    lv_touch(empty, 0, 0);
    void *big = malloc(262144); /* LV-ALLOC clean-malloc-mmap */
    lv_touch(big, 262144, 0);
    for (int i = 0; i < 16; i += 2) // even ones first, then the odd ones backwards
        free(small[i]);
    free(big);
    for (int i = 15; i > 0; i -= 2)
        free(small[i]);
    free(empty);
}

__attribute__((noinline)) void lv_use_calloc(void)
{
    void *blocks[8];
    for (int i = 0; i < 8; i++) {
        blocks[i] = calloc((size_t)(i + 1), 24); /* LV-ALLOC clean-calloc */
        lv_touch(blocks[i], 24 * (size_t)(i + 1), 0);
    }
    void *big = calloc(1, 200000); /* LV-ALLOC clean-calloc-mmap */
    lv_touch(big, 200000, 0);
    free(big);
    for (int i = 7; i >= 0; i--)
        free(blocks[i]);
}

__attribute__((noinline)) void lv_use_realloc(void)
{
    char *p = realloc(lv_null, 10); /* LV-ALLOC clean-realloc-new */
    lv_touch(p, 10, 0);
    p = realloc(p, 100); /* LV-ALLOC clean-realloc-100 */
    lv_touch(p, 100, 0);
    p = realloc(p, 1000); /* LV-ALLOC clean-realloc-1000 */
    lv_touch(p, 1000, 0);
    p = realloc(p, 10000); /* LV-ALLOC clean-realloc-10000 */
    lv_touch(p, 10000, 0);
    p = realloc(p, 200000); /* LV-ALLOC clean-realloc-mmap */
    lv_touch(p, 200000, 0);
    p = realloc(p, 5000); /* LV-ALLOC clean-realloc-shrink-5000 */
    lv_touch(p, 5000, 0);
    p = realloc(p, 50); /* LV-ALLOC clean-realloc-shrink-50 */
    lv_touch(p, 50, 0);
    p = realloc(p, 60); /* LV-ALLOC clean-realloc-60 */
    lv_touch(p, 60, 0);
    free(p);
}

__attribute__((noinline)) void lv_use_reallocarray(void)
{
    char *p = reallocarray(lv_null, 10, 8); /* LV-ALLOC clean-reallocarray-new */
    lv_touch(p, 80, 0);
    p = reallocarray(p, 100, 8); /* LV-ALLOC clean-reallocarray-grow */
    lv_touch(p, 800, 0);
    p = reallocarray(p, 3, 8); /* LV-ALLOC clean-reallocarray-shrink */
    lv_touch(p, 24, 0);
    free(p);
}

__attribute__((noinline)) void lv_use_aligned(int with_pvalloc)
{
    static const size_t pm_align[4] = {16, 64, 256, 4096};
    static const size_t aa[4][2] = {{32, 96}, {64, 128}, {512, 1000}, {4096, 4096}};
    static const size_t ma[4][2] = {{16, 40}, {128, 300}, {1024, 50}, {8192, 8192}};
    void *pm[4], *al[4], *me[4], *va[2], *pv[2];
    for (int i = 0; i < 4; i++) {
        if (posix_memalign(&pm[i], pm_align[i], 100) != 0) /* LV-ALLOC clean-posix_memalign */
            lv_fail("posix_memalign");
        lv_touch(pm[i], 100, pm_align[i]);
    }
    for (int i = 0; i < 4; i++) {
        al[i] = aligned_alloc(aa[i][0], aa[i][1]); /* LV-ALLOC clean-aligned_alloc */
        lv_touch(al[i], aa[i][1], aa[i][0]);
    }
    for (int i = 0; i < 4; i++) {
        me[i] = memalign(ma[i][0], ma[i][1]); /* LV-ALLOC clean-memalign */
        lv_touch(me[i], ma[i][1], ma[i][0]);
    }
    va[0] = valloc(100); /* LV-ALLOC clean-valloc-100 */
    lv_touch(va[0], 100, 4096);
    va[1] = valloc(5000); /* LV-ALLOC clean-valloc-5000 */
    lv_touch(va[1], 5000, 4096);
    if (with_pvalloc) {
        pv[0] = pvalloc(1); /* LV-ALLOC clean-pvalloc-1 */
        lv_touch(pv[0], 1, 4096);
        pv[1] = pvalloc(4097); /* LV-ALLOC clean-pvalloc-4097 */
        lv_touch(pv[1], 4097, 4096);
    } else {
        pv[0] = pv[1] = NULL; // free(NULL) below, like the real run's frees
    }
    for (int i = 0; i < 4; i++) {
        free(me[3 - i]);
        free(pm[i]);
        free(al[(i + 2) % 4]);
    }
    free(pv[1]);
    free(va[0]);
    free(pv[0]);
    free(va[1]);
}

__attribute__((noinline)) void lv_use_strdup(void)
{
    char *copy = strdup(lv_text); /* LV-ALLOC clean-strdup */
    lv_touch(copy, 10, 0);
    char *prefix = strndup(lv_text, 4); /* LV-ALLOC clean-strndup */
    lv_touch(prefix, 5, 0);
    free(copy);
    free(prefix);
    free(lv_null); // free(NULL): a no-op the allocator still sees
}

int main(int argc, char **argv)
{
    // valgrind 3.19 aborts the program on pvalloc ("Program aborting because
    // of call to pvalloc"), so valgrind runs pass --no-pvalloc.
    int with_pvalloc = !(argc > 1 && strcmp(argv[1], "--no-pvalloc") == 0);
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    lv_use_malloc();
    lv_use_calloc();
    lv_use_realloc();
    lv_use_reallocarray();
    lv_use_aligned(with_pvalloc);
    lv_use_strdup();
    lv_sink = NULL;
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
