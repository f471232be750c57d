// lv-leak-loop: a long-running leaker.
//
//   usage: lv-leak-loop [N [INTERVAL_MS]]
//     N            iterations; 0 (the default) = run forever
//     INTERVAL_MS  sleep after each iteration, in milliseconds (default 100; 0 = no sleep)
//
// Iteration K (K = 1, 2, ...):
//   1. leaks one 32-byte block             (lv_loop_leak_32, tag loop-leak-32)
//   2. allocates and frees a 256-byte temp  (lv_loop_temp_256, tag loop-temp-256)
//   3. when K is a multiple of 10, prints "lv-prog lv-leak-loop iteration K"
//   4. sleeps INTERVAL_MS
// So when "iteration K" appears, exactly K blocks (32*K bytes) are leaked
// until iteration K+1 starts. With N > 0 the program exits after iteration N
// having leaked N blocks of 32 bytes. Bad arguments: usage message, exit 2.
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LV_NAME "lv-leak-loop"

void *volatile lv_sink;

#include "lv-prog.h"

__attribute__((noinline)) static void lv_touch(void *p, size_t size, unsigned long iteration)
{
    if (p == NULL) {
        lv_say("lv-prog %s allocation failed\n", LV_NAME);
        _exit(3);
    }
    memset(p, (int)(iteration & 0xff), size);
    lv_sink = p;
}


__attribute__((noinline)) void lv_loop_leak_32(unsigned long iteration)
{
    void *p = malloc(32); /* LV-ALLOC loop-leak-32 */
    lv_touch(p, 32, iteration);
    lv_sink = NULL;
}

__attribute__((noinline)) void lv_loop_temp_256(unsigned long iteration)
{
    void *p = malloc(256); /* LV-ALLOC loop-temp-256 */
    lv_touch(p, 256, iteration);
    free(p);
    lv_sink = NULL;
}

static void lv_sleep_ms(unsigned long ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int main(int argc, char **argv)
{
    unsigned long iterations = 0, interval_ms = 100;
    if (argc > 3 || (argc > 1 && lv_parse(argv[1], &iterations) != 0) ||
        (argc > 2 && lv_parse(argv[2], &interval_ms) != 0)) {
        lv_say("usage: %s [ITERATIONS (0 = forever) [INTERVAL_MS (default 100)]]\n", LV_NAME);
        return 2;
    }
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    for (unsigned long k = 1; iterations == 0 || k <= iterations; k++) {
        lv_loop_leak_32(k);
        lv_loop_temp_256(k);
        lv_scrub_stack();
        if (k % 10 == 0)
            lv_say("lv-prog %s iteration %lu\n", LV_NAME, k);
        if (interval_ms != 0)
            lv_sleep_ms(interval_ms);
    }
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
