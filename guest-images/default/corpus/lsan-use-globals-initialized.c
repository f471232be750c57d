// Scenario of compiler-rt test/lsan/TestCases/use_globals_initialized.cpp: a pointer in an
// initialized global (.data) is a root. Expected: the 1337-byte block still reachable.
#include "corpus.h"

void *data_var = (void *)1;

int main(void)
{
    data_var = corpus_malloc(1337);
    return 0;
}
