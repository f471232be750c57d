// Scenario of compiler-rt test/lsan/TestCases/Linux/cleanup_in_tsd_destructor.c: a thread's
// pthread-specific value is freed by the key's destructor when the thread exits.
// Expected: nothing of the program's outstanding but what glibc keeps for a finished thread.
#include "corpus.h"
#include <pthread.h>

static pthread_key_t key;

static void destroy(void *value)
{
    free(value);
}

static void *worker(void *arg)
{
    (void)arg;
    if (pthread_setspecific(key, corpus_malloc(1337)) != 0)
        corpus_fail("pthread_setspecific");
    return NULL;
}

int main(void)
{
    if (pthread_key_create(&key, destroy) != 0)
        corpus_fail("pthread_key_create");
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0 || pthread_join(t, NULL) != 0)
        corpus_fail("thread");
    return 0;
}
