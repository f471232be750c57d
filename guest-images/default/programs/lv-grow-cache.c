// lv-grow-cache: a reachable cache that keeps growing and goes stale, next to a
// hot working set that is rewritten all the time.
//
//   usage: lv-grow-cache [TICKS [INTERVAL_MS]]
//     TICKS        number of ticks, >= 1 (default 30)
//     INTERVAL_MS  sleep after each tick, in milliseconds (default 500; 0 = no sleep)
//
// At start: 8 hot entries of 96 bytes (struct lv_hot), a list from the global
// lv_hot_head (lv_hot_add, tag grow-hot-96). Tick K (K = 1..TICKS):
//   1. adds 4 cold entries of 1024 bytes (struct lv_cold) at the head of the
//      list from the global lv_cold_head (lv_cold_add, tag grow-cold-1024). An
//      entry is written once, when it is created, and never again.
//   2. rewrites every word of every hot entry (lv_hot_rewrite; the links are
//      stored again with the value they already have)
//   3. when K is a multiple of 5, leaks one 24-byte block (lv_leak_24, tag
//      grow-leak-24)
//   4. prints "lv-prog lv-grow-cache tick K"
//   5. sleeps INTERVAL_MS (nanosleep)
// Then it prints done and exits 0 without freeing anything. At exit:
//   cold  4*TICKS x 1024 bytes  still reachable (lv_cold_head), one call site,
//                             growing linearly, never written after creation
//   hot   8 x 96 bytes        still reachable (lv_hot_head), written every tick
//   leak  TICKS/5 x 24 bytes  definitely lost
// Bad arguments: usage message, exit 2. Expected results: LEAK-PROGRAMS.md.
// Allocating lines carry /* LV-ALLOC <tag> */.
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LV_NAME "lv-grow-cache"
#define LV_HOT_ENTRIES 8
#define LV_COLD_PER_TICK 4
#define LV_LEAK_EVERY 5

struct lv_cold { // 1024 bytes: about one page per tick, so page-grained write
                 // tracking sees each tick's entries go stale once the next tick's are on a new page
    struct lv_cold *next;
    uintptr_t tick, key;
    char value[1000];
};
struct lv_hot { // 96 bytes
    struct lv_hot *next;
    uintptr_t words[11];
};
_Static_assert(sizeof(struct lv_cold) == 1024, "cold entry size");
_Static_assert(sizeof(struct lv_hot) == 96, "hot entry size");

void *volatile lv_sink;
struct lv_cold *volatile lv_cold_head;
struct lv_hot *volatile lv_hot_head;

#include "lv-prog.h"

__attribute__((noinline)) static void lv_check(void *p)
{
    if (p == NULL)
        lv_fail("allocation");
    lv_sink = p;
}


// --- Hot set: 8 entries, every word rewritten each tick ------------------------
__attribute__((noinline)) void lv_hot_add(uintptr_t index)
{
    struct lv_hot *e = malloc(sizeof *e); /* LV-ALLOC grow-hot-96 */
    lv_check(e);
    for (int w = 0; w < 11; w++)
        e->words[w] = index * 16 + (uintptr_t)w;
    e->next = lv_hot_head;
    lv_hot_head = e;
    lv_sink = NULL;
}

__attribute__((noinline)) void lv_hot_rewrite(uintptr_t tick)
{
    // Volatile accesses: every store happens, also the link that keeps its value.
    for (volatile struct lv_hot *e = lv_hot_head; e != NULL;) {
        struct lv_hot *next = e->next;
        e->next = next;
        for (int w = 0; w < 11; w++)
            e->words[w] = tick * 16 + (uintptr_t)w;
        e = next;
    }
}

// --- Cold cache: grows by 4 entries per tick, never written again ----------------
__attribute__((noinline)) void lv_cold_add(uintptr_t tick, uintptr_t key)
{
    struct lv_cold *e = malloc(sizeof *e); /* LV-ALLOC grow-cold-1024 */
    lv_check(e);
    e->tick = tick;
    e->key = key;
    memset(e->value, (int)('a' + key % 26), sizeof e->value);
    e->next = lv_cold_head;
    lv_cold_head = e;
    lv_sink = NULL;
}

// --- One leaked block every 5th tick ---------------------------------------------
__attribute__((noinline)) void lv_leak_24(uintptr_t tick)
{
    void *p = malloc(24); /* LV-ALLOC grow-leak-24 */
    lv_check(p);
    memset(p, (int)(tick & 0xff), 24);
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
    unsigned long ticks = 30, interval_ms = 500;
    if (argc > 3 || (argc > 1 && (lv_parse(argv[1], &ticks) != 0 || ticks == 0)) ||
        (argc > 2 && lv_parse(argv[2], &interval_ms) != 0)) {
        lv_say("usage: %s [TICKS (>= 1, default 30) [INTERVAL_MS (default 500)]]\n", LV_NAME);
        return 2;
    }
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
#pragma GCC unroll 1 // one call site, one stack for all eight entries
    for (uintptr_t i = 0; i < LV_HOT_ENTRIES; i++)
        lv_hot_add(i);
    for (unsigned long k = 1; k <= ticks; k++) {
#pragma GCC unroll 1 // one call site for every cold entry
        for (uintptr_t j = 0; j < LV_COLD_PER_TICK; j++)
            lv_cold_add(k, (k - 1) * LV_COLD_PER_TICK + j);
        lv_hot_rewrite(k);
        if (k % LV_LEAK_EVERY == 0)
            lv_leak_24(k);
        lv_scrub_stack();
        lv_say("lv-prog %s tick %lu\n", LV_NAME, k);
        if (interval_ms != 0)
            lv_sleep_ms(interval_ms);
    }
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
