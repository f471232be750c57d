// Scenario of compiler-rt test/lsan/TestCases/use_globals_uninitialized.cpp: a pointer in an
// uninitialized global (.bss) is a root. Expected: the 1337-byte block still reachable.
#include "corpus.h"

void *bss_var;

int main(void)
{
    bss_var = corpus_malloc(1337);
    return 0;
}
