// Scenario of compiler-rt test/lsan/TestCases/Linux/realloc_failure_keeps_original.cpp: after a
// failed realloc the original block is still owned by the caller, here through a global.
// Expected: the 100-byte original still reachable.
#include "corpus.h"
#include <stdint.h>

void *keep;

int main(void)
{
    keep = corpus_malloc(100);
    size_t volatile huge = SIZE_MAX - 4096;
    void *q = realloc(keep, huge);
    CORPUS_ESCAPE(q);
    if (q != NULL)
        corpus_fail("a huge realloc succeeded");
    return 0;
}
