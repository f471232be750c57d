// Scenario of compiler-rt test/lsan/TestCases/high_allocator_contention.cpp: several threads
// allocate and free at the same time; nothing leaks. Expected: no block of the program's own
// outstanding (glibc keeps the thread arenas' bookkeeping and finished threads' DTVs).
#include "corpus.h"
#include <pthread.h>

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(unsigned long)arg;
    void *slots[16] = {0};
    for (int i = 0; i < 300; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned slot = (seed >> 16) % 16;
        free(slots[slot]);
        slots[slot] = corpus_malloc(16 + (seed >> 8) % 2000);
    }
    for (int i = 0; i < 16; i++)
        free(slots[i]);
    return NULL;
}

int main(void)
{
    pthread_t threads[4];
    for (unsigned long i = 0; i < 4; i++)
        if (pthread_create(&threads[i], NULL, churn, (void *)(i + 1)) != 0)
            corpus_fail("pthread_create");
    for (int i = 0; i < 4; i++)
        if (pthread_join(threads[i], NULL) != 0)
            corpus_fail("pthread_join");
    return 0;
}
