// Scenario of valgrind memcheck/tests/nanoleak.c: one 1000-byte block leaked from main's callee.
// Expected: 1000 bytes in 1 block definitely lost.
#include "corpus.h"

__attribute__((noinline)) static void leak(void)
{
    CORPUS_ESCAPE(corpus_malloc(1000));
}

int main(void)
{
    leak();
    return 0;
}
