// lv-leak-realloc: two realloc chains. Each step is its own call site.
//
//   leaked chain:  malloc(16) -> realloc 64 -> realloc 256 -> realloc 4096,
//                  final block dropped: 1 block of 4096 bytes, allocated by the
//                  last step (lv_grow_to_4096, tag realloc-grow-4096).
//                  The three earlier blocks are released by realloc itself
//                  (or resized in place: glibc may return the same address).
//   freed chain:   malloc(24) -> realloc 100 -> realloc 1000 -> realloc 10
//                  (shrink) -> free.
//
// Each step writes a pattern and the next step checks that realloc kept it.
// Expected results: LEAK-PROGRAMS.md. Allocating lines carry /* LV-ALLOC <tag> */.
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LV_NAME "lv-leak-realloc"

void *volatile lv_sink;

#include "lv-prog.h"

// Checks that the first `kept` bytes still hold `old`, then fills `size` bytes with `fill`.
__attribute__((noinline)) static void lv_check_fill(unsigned char *p, size_t kept, int old, size_t size, int fill)
{
    if (p == NULL)
        lv_fail("allocation");
    for (size_t i = 0; i < kept; i++)
        if (p[i] != (unsigned char)old)
            lv_fail("content check");
    memset(p, fill, size);
    lv_sink = p;
}


// --- The leaked chain: 16 -> 64 -> 256 -> 4096 ---------------------------------
__attribute__((noinline)) unsigned char *lv_start_16(void)
{
    unsigned char *p = malloc(16); /* LV-ALLOC realloc-start-16 */
    lv_check_fill(p, 0, 0, 16, 0x11);
    return p;
}

__attribute__((noinline)) unsigned char *lv_grow_to_64(unsigned char *p)
{
    p = realloc(p, 64); /* LV-ALLOC realloc-grow-64 */
    lv_check_fill(p, 16, 0x11, 64, 0x22);
    return p;
}

__attribute__((noinline)) unsigned char *lv_grow_to_256(unsigned char *p)
{
    p = realloc(p, 256); /* LV-ALLOC realloc-grow-256 */
    lv_check_fill(p, 64, 0x22, 256, 0x33);
    return p;
}

__attribute__((noinline)) unsigned char *lv_grow_to_4096(unsigned char *p)
{
    p = realloc(p, 4096); /* LV-ALLOC realloc-grow-4096 */
    lv_check_fill(p, 256, 0x33, 4096, 0x44);
    return p;
}

__attribute__((noinline)) void lv_leak_realloc_chain(void)
{
    unsigned char *p = lv_start_16();
    p = lv_grow_to_64(p);
    p = lv_grow_to_256(p);
    p = lv_grow_to_4096(p);
    lv_sink = NULL; // the 4096-byte block is dropped here
}

// --- The freed chain: 24 -> 100 -> 1000 -> 10 -> free ------------------------
__attribute__((noinline)) void lv_freed_realloc_chain(void)
{
    unsigned char *p = malloc(24); /* LV-ALLOC realloc-freed-start-24 */
    lv_check_fill(p, 0, 0, 24, 0x55);
    p = realloc(p, 100); /* LV-ALLOC realloc-freed-grow-100 */
    lv_check_fill(p, 24, 0x55, 100, 0x66);
    p = realloc(p, 1000); /* LV-ALLOC realloc-freed-grow-1000 */
    lv_check_fill(p, 100, 0x66, 1000, 0x77);
    p = realloc(p, 10); /* LV-ALLOC realloc-freed-shrink-10 */
    lv_check_fill(p, 10, 0x77, 10, 0x88);
    free(p);
    lv_sink = NULL;
}

int main(void)
{
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    lv_freed_realloc_chain();
    lv_leak_realloc_chain();
    lv_scrub_stack();
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
