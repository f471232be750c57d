// Scenario of compiler-rt test/lsan/TestCases/create_thread_leak.cpp: threads leak blocks and
// end (some joined, some detached and finished). Expected: 4 × 1000 bytes definitely lost, plus
// whatever glibc keeps for the finished threads (valgrind's figures in expected.tsv).
#include "corpus.h"
#include <pthread.h>
#include <sched.h>

static int finished;

static void *leaker(void *arg)
{
    (void)arg;
    void *p = corpus_malloc(1000);
    memset(p, 2, 1000);
    __atomic_add_fetch(&finished, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

int main(void)
{
    pthread_t joined[2], detached[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&joined[i], NULL, leaker, NULL) != 0)
            corpus_fail("pthread_create");
    for (int i = 0; i < 2; i++)
        if (pthread_join(joined[i], NULL) != 0)
            corpus_fail("pthread_join");
    for (int i = 0; i < 2; i++) {
        if (pthread_create(&detached[i], NULL, leaker, NULL) != 0)
            corpus_fail("pthread_create");
        if (pthread_detach(detached[i]) != 0)
            corpus_fail("pthread_detach");
    }
    while (__atomic_load_n(&finished, __ATOMIC_SEQ_CST) < 4)
        sched_yield();
    // Give the detached threads time to finish exiting.
    usleep(200000);
    return 0;
}
