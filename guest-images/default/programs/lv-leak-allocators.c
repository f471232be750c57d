// lv-leak-allocators: the same known leaks through another allocator than
// glibc's, built three times against Debian's packages (guest-images/default/
// build.sh): lv-leak-jemalloc (-ljemalloc), lv-leak-tcmalloc
// (-ltcmalloc_minimal), lv-leak-mimalloc (-lmimalloc). Each allocator
// replaces malloc, calloc, realloc and free for the whole process; the
// program also calls the allocator's own API (LV_OWN_* below).
//
//   leaked: 100 bytes  malloc(100)            in lv_leak_malloc_100  (tag alloc-malloc-100)
//           200 bytes  calloc(10, 20)         in lv_leak_calloc_200  (tag alloc-calloc-200)
//           300 bytes  own realloc to 300     in lv_leak_own_300     (tag alloc-own-realloc-300)
//            48 bytes  malloc(48), a node      in lv_leak_tree        (tag alloc-tree-root)
//            24 bytes  malloc(24), its child   in lv_leak_tree        (tag alloc-tree-child; indirectly lost)
//   freed:  200 x (malloc + own allocation), each freed again (own sized free
//           where the allocator has one), in lv_churn.
//
// Output goes through write(2). Expected results: LEAK-PROGRAMS.md.
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(LV_JEMALLOC)
#include <jemalloc/jemalloc.h>
#define LV_NAME "lv-leak-jemalloc"
#define LV_OWN_ALLOC(n) mallocx((n), 0)
#define LV_OWN_REALLOC(p, n) rallocx((p), (n), 0)
#define LV_OWN_FREE(p, n) sdallocx((p), (n), 0)
#elif defined(LV_TCMALLOC)
#include <gperftools/tcmalloc.h>
#define LV_NAME "lv-leak-tcmalloc"
#define LV_OWN_ALLOC(n) tc_malloc(n)
#define LV_OWN_REALLOC(p, n) tc_realloc((p), (n))
#define LV_OWN_FREE(p, n) tc_free_sized((p), (n))
#elif defined(LV_MIMALLOC)
#include <mimalloc.h>
#define LV_NAME "lv-leak-mimalloc"
#define LV_OWN_ALLOC(n) mi_zalloc(n)
#define LV_OWN_REALLOC(p, n) mi_realloc((p), (n))
#define LV_OWN_FREE(p, n) mi_free_size((p), (n))
#else
#error "build with -DLV_JEMALLOC, -DLV_TCMALLOC or -DLV_MIMALLOC"
#endif

// Every allocation is published here, so the compiler cannot drop it; the
// leaking helpers clear it again, so nothing in the program refers to them.
void *volatile lv_sink;

#include "lv-prog.h"

struct lv_node {
    struct lv_node *child;
    char payload[40];
};

__attribute__((noinline)) static void lv_touch(void *p, size_t size)
{
    if (p == NULL)
        lv_fail("allocation");
    memset(p, 0xa5, size);
    lv_sink = p;
}

__attribute__((noinline)) void lv_leak_malloc_100(void)
{
    void *p = malloc(100); /* LV-ALLOC alloc-malloc-100 */
    lv_touch(p, 100);
    lv_sink = NULL;
}

__attribute__((noinline)) void lv_leak_calloc_200(void)
{
    void *p = calloc(10, 20); /* LV-ALLOC alloc-calloc-200 */
    lv_touch(p, 200);
    lv_sink = NULL;
}

__attribute__((noinline)) void lv_leak_own_300(void)
{
    void *p = LV_OWN_ALLOC(64); /* LV-ALLOC alloc-own-start */
    lv_touch(p, 64);
    p = LV_OWN_REALLOC(p, 300); /* LV-ALLOC alloc-own-realloc-300 */
    lv_touch(p, 300);
    lv_sink = NULL;
}

__attribute__((noinline)) void lv_leak_tree(void)
{
    struct lv_node *root = malloc(sizeof *root); /* LV-ALLOC alloc-tree-root */
    lv_touch(root, sizeof *root);
    root->child = malloc(24); /* LV-ALLOC alloc-tree-child */
    if (root->child == NULL)
        lv_fail("allocation");
    memset(root->child, 0, 24);
    lv_sink = NULL;
}

// Allocations that are all freed again.
__attribute__((noinline)) void lv_churn(void)
{
    for (size_t i = 0; i < 200; i++) {
        void *p = malloc(i + 1); /* LV-ALLOC alloc-free-malloc */
        lv_touch(p, i + 1);
        void *q = LV_OWN_ALLOC(i + 8); /* LV-ALLOC alloc-free-own */
        lv_touch(q, i + 8);
        free(p);
        LV_OWN_FREE(q, i + 8);
    }
    lv_sink = NULL;
}

int main(void)
{
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    lv_churn();
    lv_leak_malloc_100();
    lv_leak_calloc_200();
    lv_leak_own_300();
    lv_leak_tree();
    lv_scrub_stack();
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
