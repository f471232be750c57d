// Scenario of compiler-rt test/lsan/TestCases/stale_stack_leak.cpp: the only copy of the pointer
// is in the frame of a function that has returned; that dead stack is no root. The frame is
// not overwritten before exit. Expected: 1337 bytes definitely lost.
#include "corpus.h"

__attribute__((noinline)) static void leave_in_dead_frame(void)
{
    void *volatile slots[16];
    void *p = corpus_malloc(1337);
    for (int i = 0; i < 16; i++)
        slots[i] = p;
    __asm__ volatile("" : : "r"(slots) : "memory");
}

int main(void)
{
    leave_in_dead_frame();
    return 0;
}
