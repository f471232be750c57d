// Scenario of compiler-rt test/lsan/TestCases/many_tls_keys_pthread.cpp: 100 pthread keys of the
// main thread each hold a block; those past the first 32 sit in second-level arrays glibc
// allocates. Expected: all 100 values and the arrays still reachable.
#include "corpus.h"
#include <pthread.h>

int main(void)
{
    for (int i = 0; i < 100; i++) {
        pthread_key_t key;
        if (pthread_key_create(&key, NULL) != 0)
            corpus_fail("pthread_key_create");
        if (pthread_setspecific(key, corpus_malloc(24)) != 0)
            corpus_fail("pthread_setspecific");
    }
    return 0;
}
