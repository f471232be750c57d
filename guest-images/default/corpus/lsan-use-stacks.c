// Scenario of compiler-rt test/lsan/TestCases/use_stacks.cpp: the pointer lives in main's frame,
// which is still live when main calls exit(). Expected: the 1337-byte block still reachable.
#include "corpus.h"

int main(void)
{
    void *volatile stack_var = corpus_malloc(1337);
    (void)stack_var;
    exit(0);
}
