// Scenario of valgrind memcheck/tests/leak-pool.c's plainest case without client requests: the
// only pointer to a block is inside another block that is then freed; freed memory holds no
// references. Expected: the 64-byte block definitely lost.
#include "corpus.h"

__attribute__((noinline)) static void work(void)
{
    void **holder = corpus_malloc(32);
    memset(holder, 0, 32);
    holder[3] = corpus_malloc(64);
    free(holder);
}

int main(void)
{
    work();
    return 0;
}
