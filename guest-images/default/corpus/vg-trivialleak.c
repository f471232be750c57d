// Scenario of valgrind memcheck/tests/trivialleak.c: the same call site leaks in a loop.
// Expected: 100 blocks of 1000 bytes definitely lost.
#include "corpus.h"

__attribute__((noinline)) static void leak(void)
{
    CORPUS_ESCAPE(corpus_malloc(1000));
}

int main(void)
{
    for (int i = 0; i < 100; i++)
        leak();
    return 0;
}
