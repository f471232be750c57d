// lv-leak-basic: leaks exactly three heap blocks from three distinct call
// sites and frees everything else it allocates.
//
//   leaked: 100 bytes  malloc(100)          in lv_leak_malloc_100   (tag basic-malloc-100)
//           200 bytes  calloc(10, 20)       in lv_leak_calloc_200   (tag basic-calloc-200)
//           300 bytes  realloc(NULL, 300)   in lv_leak_realloc_300  (tag basic-realloc-300)
//   freed:  5 x malloc (16..80 bytes), 1 x calloc(4, 32), malloc(50) grown by
//           realloc to 500 -- see lv_churn.
//
// Output goes through write(2) (no stdio buffer is allocated), so these are
// the only heap blocks the program itself asks for. Expected results, checked
// against valgrind: LEAK-PROGRAMS.md. Allocating lines carry /* LV-ALLOC <tag> */.
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LV_NAME "lv-leak-basic"

// Every allocation is published here, so the compiler cannot drop it; the
// leaking helpers clear it again, so nothing in the program refers to them.
void *volatile lv_sink;
// Always NULL; read through a volatile so GCC cannot turn realloc(NULL, n)
// into malloc(n).
void *volatile lv_null;

#include "lv-prog.h"

__attribute__((noinline)) static void lv_touch(void *p, size_t size)
{
    if (p == NULL) {
        lv_say("lv-prog %s allocation failed\n", LV_NAME);
        _exit(3);
    }
    memset(p, 0xa5, size);
    lv_sink = p;
}

// Overwrites the dead stack below the caller, so no stale copy of a leaked
// pointer survives in a returned-from frame.

__attribute__((noinline)) void lv_leak_malloc_100(void)
{
    void *p = malloc(100); /* LV-ALLOC basic-malloc-100 */
    lv_touch(p, 100);
    lv_sink = NULL;
}

__attribute__((noinline)) void lv_leak_calloc_200(void)
{
    void *p = calloc(10, 20); /* LV-ALLOC basic-calloc-200 */
    lv_touch(p, 200);
    lv_sink = NULL;
}

__attribute__((noinline)) void lv_leak_realloc_300(void)
{
    void *p = realloc(lv_null, 300); /* LV-ALLOC basic-realloc-300 */
    lv_touch(p, 300);
    lv_sink = NULL;
}

// Allocations that are all freed again.
__attribute__((noinline)) void lv_churn(void)
{
    void *blocks[5];
    for (int i = 0; i < 5; i++) {
        blocks[i] = malloc(16 * (size_t)(i + 1)); /* LV-ALLOC basic-free-malloc */
        lv_touch(blocks[i], 16 * (size_t)(i + 1));
    }
    void *zeroed = calloc(4, 32); /* LV-ALLOC basic-free-calloc */
    lv_touch(zeroed, 128);
    void *grown = malloc(50); /* LV-ALLOC basic-free-realloc-start */
    lv_touch(grown, 50);
    grown = realloc(grown, 500); /* LV-ALLOC basic-free-realloc-grow */
    lv_touch(grown, 500);
    for (int i = 4; i >= 0; i--)
        free(blocks[i]);
    free(zeroed);
    free(grown);
    lv_sink = NULL;
}

int main(void)
{
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    lv_churn();
    lv_leak_malloc_100();
    lv_leak_calloc_200();
    lv_leak_realloc_300();
    lv_scrub_stack();
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
