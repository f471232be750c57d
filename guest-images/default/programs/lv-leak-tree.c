// lv-leak-tree: heap graphs for reachability classification.
//
//   usage: lv-leak-tree [--block]
//
// Every category has its own block size, so blocks can be told apart by size:
//
//   tree      7 x 24 bytes  a complete binary tree of depth 3 (struct lv_node:
//                           left, right, key); the root is kept in lv_tree_root,
//                           then lv_tree_root = NULL: root directly lost, the
//                           other 6 only reachable from it (indirectly lost)
//   cycle     2 x 32 bytes  A <-> B (struct lv_pair), no outside reference
//   interior  1 x 128 bytes only lv_interior = start + 64 points at it
//   cache     5 x 48 bytes  a linked list from the global lv_cache_head, one
//                           node added per lv_cache_add() call: still reachable
//   xor       1 x 40 bytes  only lv_xor_handle = address ^ LV_XOR_KEY refers to
//                           it; the program still uses it (decodes it before
//                           exit), yet a scanner sees no pointer: a documented
//                           false positive ("definitely lost")
//   stack     1 x 56 bytes  --block only: held in a volatile local of
//                           lv_hold_on_stack while it sits in pause(); freed
//                           before that function returns (never outstanding at exit)
//
// With --block the program prints "lv-prog lv-leak-tree blocked" and waits in
// pause() (in lv_hold_on_stack) with all of the above in place. SIGUSR1 makes
// it continue: it frees the 56-byte block and exits normally, so the state at
// exit is the same as without --block. Expected results (and valgrind's view,
// at exit and while blocked): LEAK-PROGRAMS.md. Allocating lines carry /* LV-ALLOC <tag> */.
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LV_NAME "lv-leak-tree"
#define LV_XOR_KEY ((uintptr_t)0x5a5a5a5a5a5a5a5aULL)

struct lv_node { // 24 bytes: three pointer-sized words
    struct lv_node *left, *right;
    uintptr_t key;
};
struct lv_pair { // 32 bytes
    struct lv_pair *peer;
    uintptr_t tag;
    uintptr_t payload[2];
};
struct lv_cache_entry { // 48 bytes
    struct lv_cache_entry *next;
    uintptr_t key;
    char value[32];
};
_Static_assert(sizeof(struct lv_node) == 24, "tree node size");
_Static_assert(sizeof(struct lv_pair) == 32, "cycle node size");
_Static_assert(sizeof(struct lv_cache_entry) == 48, "cache entry size");

void *volatile lv_sink;
struct lv_node *volatile lv_tree_root;
char *volatile lv_interior;
struct lv_cache_entry *volatile lv_cache_head;
volatile uintptr_t lv_xor_handle;
static volatile sig_atomic_t lv_resumed;

#include "lv-prog.h"

__attribute__((noinline)) static void lv_check(void *p)
{
    if (p == NULL)
        lv_fail("allocation");
    lv_sink = p;
}


// --- Tree: 1 directly + 6 indirectly lost ------------------------------------
__attribute__((noinline)) struct lv_node *lv_tree_node(uintptr_t key)
{
    struct lv_node *n = malloc(sizeof *n); /* LV-ALLOC tree-node */
    lv_check(n);
    n->left = n->right = NULL;
    n->key = key;
    return n;
}

// Keys in breadth-first order: root 1, children 2k and 2k+1.
__attribute__((noinline)) struct lv_node *lv_tree_build(uintptr_t key, int depth)
{
    struct lv_node *n = lv_tree_node(key);
    if (depth > 1) {
        n->left = lv_tree_build(2 * key, depth - 1);
        n->right = lv_tree_build(2 * key + 1, depth - 1);
    }
    return n;
}

__attribute__((noinline)) void lv_tree_leak(void)
{
    lv_tree_root = lv_tree_build(1, 3);
    lv_tree_root = NULL; // the whole tree becomes unreachable
    lv_sink = NULL;
}

// --- Cycle: A <-> B, both unreachable -----------------------------------------
__attribute__((noinline)) struct lv_pair *lv_cycle_node(uintptr_t tag)
{
    struct lv_pair *p = malloc(sizeof *p); /* LV-ALLOC cycle-node */
    lv_check(p);
    p->peer = NULL;
    p->tag = tag;
    p->payload[0] = p->payload[1] = 0;
    return p;
}

__attribute__((noinline)) void lv_cycle_leak(void)
{
    struct lv_pair *a = lv_cycle_node(0xa);
    struct lv_pair *b = lv_cycle_node(0xb);
    a->peer = b;
    b->peer = a;
    lv_sink = NULL;
}

// --- Interior pointer only: possibly lost --------------------------------------
__attribute__((noinline)) void lv_interior_keep(void)
{
    char *p = malloc(128); /* LV-ALLOC interior-128 */
    lv_check(p);
    memset(p, 0x69, 128);
    lv_interior = p + 64;
    lv_sink = NULL;
}

// --- Global cache: still reachable, grows by one node per call ----------------
__attribute__((noinline)) void lv_cache_add(uintptr_t key)
{
    struct lv_cache_entry *e = malloc(sizeof *e); /* LV-ALLOC cache-entry */
    lv_check(e);
    e->key = key;
    memset(e->value, (int)('a' + key), sizeof e->value);
    e->next = lv_cache_head;
    lv_cache_head = e;
    lv_sink = NULL;
}

// --- XOR-hidden pointer: false positive ---------------------------------------
__attribute__((noinline)) void lv_xor_hide(void)
{
    char *p = malloc(40); /* LV-ALLOC xor-40 */
    lv_check(p);
    memcpy(p, "lv-leak-tree xor-hidden block, in use!!", 40);
    lv_xor_handle = (uintptr_t)p ^ LV_XOR_KEY;
    lv_sink = NULL;
}

__attribute__((noinline)) void lv_xor_use(void)
{
    const char *p = (const char *)(lv_xor_handle ^ LV_XOR_KEY);
    if (memcmp(p, "lv-leak-tree xor-hidden block, in use!!", 40) != 0)
        lv_fail("xor block check");
}

// --- A block only a running function's stack frame refers to ----------------
static void lv_on_sigusr1(int sig)
{
    (void)sig;
    lv_resumed = 1;
}

__attribute__((noinline)) void lv_hold_on_stack(void)
{
    void *volatile held = malloc(56); /* LV-ALLOC stack-56 */
    lv_check(held);
    memset(held, 0x73, 56);
    lv_sink = NULL; // from here on only `held` (a stack slot) refers to the block
    lv_say("lv-prog %s blocked\n", LV_NAME);
    while (!lv_resumed)
        pause();
    free(held);
}

int main(int argc, char **argv)
{
    int block = argc > 1 && strcmp(argv[1], "--block") == 0;
    if (argc > 2 || (argc == 2 && !block)) {
        lv_say("usage: %s [--block]\n", LV_NAME);
        return 2;
    }
    if (block) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = lv_on_sigusr1;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR1, &sa, NULL) != 0)
            return 1;
    }
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    lv_tree_leak();
    lv_cycle_leak();
    lv_interior_keep();
#pragma GCC unroll 1 // one call site, one stack for all five entries
    for (uintptr_t key = 0; key < 5; key++)
        lv_cache_add(key);
    lv_xor_hide();
    lv_scrub_stack();
    if (block) {
        lv_hold_on_stack();
        lv_scrub_stack();
    }
    lv_xor_use();
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
