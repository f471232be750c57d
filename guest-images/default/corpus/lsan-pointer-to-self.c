// Scenario of compiler-rt test/lsan/TestCases/pointer_to_self.cpp: a block that holds the only
// pointer to itself is still lost (a self-reference is no root). Expected: 1337 bytes definitely lost.
#include "corpus.h"

__attribute__((noinline)) static void leak(void)
{
    void **p = corpus_malloc(1337);
    memset(p, 0, 1337);
    *p = p;
}

int main(void)
{
    leak();
    return 0;
}
