// Scenario of compiler-rt test/lsan/TestCases/swapcontext.cpp (stack-allocated coroutine stack):
// the coroutine's stack is a buffer in main's frame, cleared after the coroutine ends, so the
// pointer it left there is gone. Expected: 2664 bytes definitely lost.
#include "corpus.h"
#include <ucontext.h>

enum { stack_size = 1 << 18 };
static ucontext_t main_context, child_context;

static void child(void)
{
    int *volatile leaked = corpus_malloc(666 * sizeof(int));
    (void)leaked;
}

int main(void)
{
    static char stack_memory[stack_size] __attribute__((aligned(16)));
    if (getcontext(&child_context) != 0)
        corpus_fail("getcontext");
    child_context.uc_stack.ss_sp = stack_memory;
    child_context.uc_stack.ss_size = stack_size;
    child_context.uc_link = &main_context;
    makecontext(&child_context, child, 0);
    if (swapcontext(&main_context, &child_context) != 0)
        corpus_fail("swapcontext");
    explicit_bzero(stack_memory, sizeof stack_memory);
    return 0;
}
