// Scenario of valgrind memcheck/tests/realloc1.c, realloc2.c and realloc3.c: a block grown and
// shrunk through realloc chains (moving and in place); only the last block of each chain counts.
// Expected: the grown chain's 4000-byte block definitely lost, the shrunk chain's 10-byte block
// still reachable through a global.
#include "corpus.h"

void *kept;

__attribute__((noinline)) static void chains(void)
{
    void *grown = corpus_malloc(10);
    for (size_t size = 20; size <= 4000; size *= 2)
        if ((grown = realloc(grown, size)) == NULL)
            corpus_fail("realloc");
    if ((grown = realloc(grown, 4000)) == NULL)
        corpus_fail("realloc");
    CORPUS_ESCAPE(grown);
    kept = corpus_malloc(5000);
    for (size_t size = 2500; size >= 10; size /= 2)
        if ((kept = realloc(kept, size)) == NULL)
            corpus_fail("realloc");
    if ((kept = realloc(kept, 10)) == NULL)
        corpus_fail("realloc");
}

int main(void)
{
    chains();
    return 0;
}
