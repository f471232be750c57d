// Scenario of LLVM compiler-rt test/lsan/TestCases/leak_check_at_exit.cpp: a block whose only
// pointer is dropped is reported at exit. Expected: 1337 bytes in 1 block definitely lost.
#include "corpus.h"

__attribute__((noinline)) static void leak(void)
{
    void *p = corpus_malloc(1337);
    memset(p, 1, 1337);
}

int main(void)
{
    leak();
    return 0;
}
