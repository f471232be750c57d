// Scenario of compiler-rt test/lsan/TestCases/large_allocation_leak.cpp: a large block (glibc
// serves it with its own mmap) leaks. Expected: 33554432 bytes in 1 block definitely lost.
#include "corpus.h"

__attribute__((noinline)) static void leak(void)
{
    char *p = corpus_malloc(32u << 20);
    p[0] = 1;
}

int main(void)
{
    leak();
    return 0;
}
