// Scenario of compiler-rt test/lsan/TestCases/realloc_too_big.c: a realloc that cannot be served
// fails and leaves the original block allocated; its pointer is then dropped.
// Expected: the 10-byte original definitely lost, nothing from the failed call.
#include "corpus.h"
#include <stdint.h>

__attribute__((noinline)) static void leak(void)
{
    void *p = corpus_malloc(10);
    void *volatile huge = (void *)(SIZE_MAX / 2);
    void *q = realloc(p, (size_t)huge);
    CORPUS_ESCAPE(q);
    if (q != NULL)
        corpus_fail("a huge realloc succeeded");
}

int main(void)
{
    leak();
    return 0;
}
