// Scenario of compiler-rt test/lsan/TestCases/use_registers.cpp: a thread keeps the only pointer
// in a general-purpose register (rbx) and spins while main returns. What valgrind says is
// recorded in expected.tsv.
#include "corpus.h"
#include <pthread.h>
#include <sched.h>

static int started;

static void *spin(void *arg)
{
    (void)arg;
    void *p = corpus_malloc(1337);
    __asm__ volatile("mov %0, %%rbx\n\t"
                     "movl $1, %1\n\t"
                     "1: pause\n\t"
                     "jmp 1b"
                     :
                     : "r"(p), "m"(started)
                     : "rbx", "memory");
    return NULL;
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
