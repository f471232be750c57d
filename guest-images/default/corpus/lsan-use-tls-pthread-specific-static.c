// Scenario of compiler-rt test/lsan/TestCases/Linux/use_tls_pthread_specific_static.cpp: a value
// set with pthread_setspecific for one of the first 32 keys lives in the thread descriptor; the
// main thread's destructors never run at exit. Expected: 1337 bytes still reachable.
#include "corpus.h"
#include <pthread.h>

int main(void)
{
    pthread_key_t key;
    if (pthread_key_create(&key, NULL) != 0)
        corpus_fail("pthread_key_create");
    if (pthread_setspecific(key, corpus_malloc(1337)) != 0)
        corpus_fail("pthread_setspecific");
    return 0;
}
