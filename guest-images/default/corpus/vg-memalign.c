// Scenario of valgrind memcheck/tests/memalign_test.c and memalign2.c: every aligned allocator
// of glibc (memalign, posix_memalign, aligned_alloc, valloc; not pvalloc, which fails under
// valgrind 3.19), half freed and half leaked.
// Expected: the four blocks kept in a global still reachable, the four dropped definitely lost.
#include "corpus.h"
#include <malloc.h>

void *kept[4];

__attribute__((noinline)) static void allocate(int keep)
{
    void *blocks[4];
    blocks[0] = memalign(64, 100);
    if (posix_memalign(&blocks[1], 256, 200) != 0)
        blocks[1] = NULL;
    blocks[2] = aligned_alloc(128, 384);
    blocks[3] = valloc(300);
    for (int i = 0; i < 4; i++) {
        if (blocks[i] == NULL)
            corpus_fail("aligned allocation");
        memset(blocks[i], 3, 16);
        if (keep)
            kept[i] = blocks[i];
        CORPUS_ESCAPE(blocks[i]);
    }
}

__attribute__((noinline)) static void allocate_and_free(void)
{
    void *p = memalign(32, 70), *q = NULL;
    if (p == NULL || posix_memalign(&q, 4096, 10) != 0)
        corpus_fail("aligned allocation");
    free(p);
    free(q);
}

int main(void)
{
    allocate(1);
    allocate(0);
    allocate_and_free();
    return 0;
}
