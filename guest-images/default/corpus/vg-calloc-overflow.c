// Scenario of valgrind memcheck/tests/calloc-overflow.c: a calloc whose size overflows fails and
// allocates nothing; a plain calloc is freed. Expected: no block of the program's outstanding.
#include "corpus.h"
#include <stdint.h>

int main(void)
{
    size_t volatile n = SIZE_MAX / 2 + 2;
    void *p = calloc(n, 2);
    CORPUS_ESCAPE(p);
    if (p != NULL)
        corpus_fail("an overflowing calloc succeeded");
    void *q = calloc(100, 3);
    if (q == NULL)
        corpus_fail("calloc");
    free(q);
    return 0;
}
