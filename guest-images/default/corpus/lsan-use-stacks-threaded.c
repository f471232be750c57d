// Scenario of compiler-rt test/lsan/TestCases/use_stacks_threaded.cpp: a thread keeps the only
// pointer on its stack and spins while main returns. LeakSanitizer scans that live thread's
// stack; what valgrind says is recorded in expected.tsv.
#include "corpus.h"
#include <pthread.h>
#include <sched.h>

static int started;

__attribute__((noreturn)) static void *spin(void *arg)
{
    (void)arg;
    void *volatile p = corpus_malloc(1337);
    (void)p;
    __atomic_store_n(&started, 1, __ATOMIC_SEQ_CST);
    for (;;)
        sched_yield();
}

int main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, spin, NULL) != 0)
        corpus_fail("pthread_create");
    while (!__atomic_load_n(&started, __ATOMIC_SEQ_CST))
        sched_yield();
    return 0;
}
