// Scenario of compiler-rt test/lsan/TestCases/swapcontext.cpp (heap-allocated coroutine stack):
// a coroutine running on a stack inside a heap block allocates 666 ints and keeps the pointer
// only in its frame there; then the heap stack is freed. A heap block is never a stack root,
// and a freed block holds no references. Expected: 2664 bytes definitely lost.
#include "corpus.h"
#include <ucontext.h>

enum { stack_size = 1 << 20 };
static ucontext_t main_context, child_context;

static void child(void)
{
    int *volatile leaked = corpus_malloc(666 * sizeof(int));
    (void)leaked;
}

int main(void)
{
    char *heap_stack = corpus_malloc(stack_size + 1);
    if (getcontext(&child_context) != 0)
        corpus_fail("getcontext");
    child_context.uc_stack.ss_sp = heap_stack;
    child_context.uc_stack.ss_size = stack_size / 2;
    child_context.uc_link = &main_context;
    makecontext(&child_context, child, 0);
    if (swapcontext(&main_context, &child_context) != 0)
        corpus_fail("swapcontext");
    free(heap_stack);
    return 0;
}
