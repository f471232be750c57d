// Scenario of compiler-rt test/lsan/TestCases/Linux/use_tls_pthread_specific_dynamic.cpp: a value
// for a key past the first 32 lives in a second-level array glibc allocates (calloc of 32
// entries); the value is reachable through it. Expected: the value and that array still reachable.
#include "corpus.h"
#include <pthread.h>

int main(void)
{
    pthread_key_t key = 0;
    for (int i = 0; i < 40; i++)
        if (pthread_key_create(&key, NULL) != 0)
            corpus_fail("pthread_key_create");
    if (pthread_setspecific(key, corpus_malloc(1337)) != 0)
        corpus_fail("pthread_setspecific");
    return 0;
}
