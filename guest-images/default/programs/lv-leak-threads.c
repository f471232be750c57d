// lv-leak-threads: 4 threads allocate concurrently (they start together at a
// barrier); thread i (0..3) leaks i+1 blocks of 64*(i+1) bytes from a single
// call site (lv_thread_leak_block) and frees 8 temporary blocks of 100+i
// bytes and one of 1000+i bytes. main creates all four, then joins all four.
//
//   leaked: thread 0:  1 x  64 bytes      total: 10 blocks, 1920 bytes,
//           thread 1:  2 x 128 bytes             all from tag threads-leak
//           thread 2:  3 x 192 bytes
//           thread 3:  4 x 256 bytes
//   freed:  per thread 8 x (100+i) bytes (tag threads-temp) and
//           1 x (1000+i) bytes (tag threads-scratch)
//
// Which thread's block lands at which address varies from run to run (the
// threads really run at the same time, in per-thread malloc arenas); the
// counts and sizes per call site do not. pthread_create itself allocates the
// new thread's DTV with calloc inside glibc (see LEAK-PROGRAMS.md).
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LV_NAME "lv-leak-threads"
#define LV_THREADS 4

// One slot per thread, so the threads do not share a cache line they write.
struct lv_slot {
    void *volatile sink;
    char pad[64 - sizeof(void *)];
};
struct lv_slot lv_sinks[LV_THREADS];
pthread_barrier_t lv_start;

#include "lv-prog.h"

__attribute__((noinline)) static void lv_touch(int thread, void *p, size_t size)
{
    if (p == NULL) {
        lv_say("lv-prog %s allocation failed\n", LV_NAME);
        _exit(3);
    }
    memset(p, 0x40 + thread, size);
    lv_sinks[thread].sink = p;
}


// The single call site of every leaked block.
__attribute__((noinline)) void lv_thread_leak_block(int thread, size_t size)
{
    void *p = malloc(size); /* LV-ALLOC threads-leak */
    lv_touch(thread, p, size);
    lv_sinks[thread].sink = NULL;
}

__attribute__((noinline)) void lv_thread_temp_block(int thread, size_t size)
{
    void *p = malloc(size); /* LV-ALLOC threads-temp */
    lv_touch(thread, p, size);
    free(p);
    lv_sinks[thread].sink = NULL;
}

__attribute__((noinline)) static void lv_thread_work(int thread)
{
    void *scratch = malloc(1000 + (size_t)thread); /* LV-ALLOC threads-scratch */
    lv_touch(thread, scratch, 1000 + (size_t)thread);
    for (int k = 0; k < 8; k++) {
        lv_thread_temp_block(thread, 100 + (size_t)thread);
        if (k <= thread)
            lv_thread_leak_block(thread, 64 * (size_t)(thread + 1));
    }
    free(scratch);
    lv_sinks[thread].sink = NULL;
}

static void *lv_thread_main(void *arg)
{
    int thread = (int)(intptr_t)arg;
    pthread_barrier_wait(&lv_start);
    lv_thread_work(thread);
    lv_scrub_stack();
    return NULL;
}

int main(void)
{
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    pthread_t threads[LV_THREADS];
    if (pthread_barrier_init(&lv_start, NULL, LV_THREADS) != 0)
        return 1;
    for (int i = 0; i < LV_THREADS; i++) {
        if (pthread_create(&threads[i], NULL, lv_thread_main, (void *)(intptr_t)i) != 0) {
            lv_say("lv-prog %s pthread_create failed\n", LV_NAME);
            return 1;
        }
    }
    for (int i = 0; i < LV_THREADS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&lv_start);
    lv_scrub_stack();
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
