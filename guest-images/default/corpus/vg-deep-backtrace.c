// Scenario of valgrind memcheck/tests/deep-backtrace.c: a leak at the bottom of a 60-deep call
// chain. Expected: 20 bytes in 1 block definitely lost.
#include "corpus.h"

__attribute__((noinline)) static int descend(int depth)
{
    if (depth == 0) {
        CORPUS_ESCAPE(corpus_malloc(20));
        return 0;
    }
    int r = descend(depth - 1);
    __asm__ volatile("" : "+r"(r));
    return r + 1;
}

int main(void)
{
    return descend(60) == 60 ? 0 : 1;
}
