// Scenario of compiler-rt test/lsan/TestCases/realloc_zero.c: glibc's realloc(p, 0) frees p and
// returns NULL, so nothing leaks. Expected: no block of the program's outstanding.
#include "corpus.h"

int main(void)
{
    void *p = corpus_malloc(10);
    void *q = realloc(p, 0);
    CORPUS_ESCAPE(q);
    if (q != NULL)
        corpus_fail("realloc(p, 0) returned a block");
    return 0;
}
