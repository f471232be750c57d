// Scenario of compiler-rt test/lsan/TestCases/malloc_zero.c: a zero-byte block is still a block
// and leaks like any other. Expected: 0 bytes in 1 block definitely lost.
#include "corpus.h"

__attribute__((noinline)) static void leak(void)
{
    void *p = malloc(0);
    if (p == NULL)
        corpus_fail("malloc(0)");
    CORPUS_ESCAPE(p);
}

int main(void)
{
    leak();
    return 0;
}
