// Scenario of compiler-rt test/lsan/TestCases/Linux/exit_atexit_stale_stack.cpp: a 100-byte block
// whose only copy sits in a dead helper frame just below main's, then main calls exit(): the
// frames exit() builds later reuse that dead stack, but a stale word there is no root.
// Expected: 100 bytes definitely lost.
#include "corpus.h"

__attribute__((noinline)) static void leak_to_dead_frame(void)
{
    void *volatile slot[8];
    slot[0] = corpus_malloc(100);
    for (int i = 1; i < 8; i++)
        slot[i] = slot[0];
    __asm__ volatile("" : : "r"(slot) : "memory");
}

int main(void)
{
    leak_to_dead_frame();
    exit(0);
}
