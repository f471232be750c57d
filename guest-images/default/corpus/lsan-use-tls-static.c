// Scenario of compiler-rt test/lsan/TestCases/Linux/use_tls_static.cpp: a pointer in a static
// TLS variable (__thread) of the main thread is a root. Expected: 1337 bytes still reachable.
#include "corpus.h"

__thread void *tls_var;

int main(void)
{
    tls_var = corpus_malloc(1337);
    return 0;
}
