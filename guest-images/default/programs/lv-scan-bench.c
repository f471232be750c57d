// lv-scan-bench: a large reachable heap, for timing reachability scans.
//
//   usage: lv-scan-bench [MIB [BLOCK]]
//     MIB    heap to build, in MiB, 1..4096 (default 64)
//     BLOCK  block size in bytes, 64..65536, a multiple of 8 (default 4096)
//
// Builds N = MIB MiB / BLOCK blocks of BLOCK bytes (malloc, tag scan-block),
// all reachable: the global lv_blocks points at a malloc'd array of the N
// block pointers (tag scan-array), sorted by address. Words 1..4 of block i
// point at blocks i+1, i+N/2, i*2654435761 and N-1-i (mod N, in address
// order), so a scanner follows real pointers; every other word (0 and 5..)
// holds a small integer (< 4096, never a heap address). While building, 16
// more blocks of BLOCK bytes are allocated and dropped (lv_leak_block, tag
// scan-leak), spread evenly among the others: definitely lost. Then it prints
//
//   lv-prog lv-scan-bench ready-scan blocks=N bytes=B pages=P
//
// B = N * BLOCK; P = the number of distinct 4 KiB pages spanned by the N
// blocks. Each of these pages holds a data word of a block (word 0 is in the
// block's first page; the next page starts at most at word 4, and words 5..7
// follow in it). It then reads commands from stdin, one a line (read(2) on
// fd 0, no stdio):
//
//   dirty PERMILLE  PERMILLE = 0..1000: changes one word (adds 1 mod 4096,
//                   so it stays a small integer and always changes) in
//                   D = P * PERMILLE / 1000 of those P pages, evenly spread
//                   (page j of the P, in address order, is written when
//                   floor((j+1)*D/P) > floor(j*D/P)). The word is the first
//                   data word of a block in the page, so no link changes.
//                   Answers "lv-prog lv-scan-bench dirtied pages=D".
//   quit (or EOF)   frees the N blocks and the array (not the 16 leaked
//                   blocks), prints done, exits 0.
//   anything else   "lv-prog lv-scan-bench unknown command", and go on.
//
// Bad arguments: usage message, exit 2; allocation failure or failed
// self-check: exit 3. Expected results: LEAK-PROGRAMS.md ("Benchmark
// programs"). Allocating lines carry /* LV-ALLOC <tag> */.
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LV_NAME "lv-scan-bench"
#define LV_LINK0 1   // words LV_LINK0 .. LV_LINK0 + LV_LINKS - 1 of a block are links
#define LV_LINKS 4
#define LV_LEAKED 16 // dropped blocks
#define LV_PAGE_SHIFT 12

void *volatile lv_sink;
uintptr_t **volatile lv_blocks; // the root: N block pointers
static size_t lv_nblocks, lv_block_bytes, lv_pages;

#include "lv-prog.h"


// The data words of a block (all but the links): small integers only.
static void lv_fill_data(uintptr_t *block, size_t i)
{
    block[0] = i & 0xfff;
    for (size_t w = LV_LINK0 + LV_LINKS; w < lv_block_bytes / sizeof(uintptr_t); w++)
        block[w] = (i * 7 + w) & 0xfff;
}

__attribute__((noinline)) static void lv_alloc_array(size_t n)
{
    uintptr_t **a = malloc(n * sizeof *a); /* LV-ALLOC scan-array */
    if (a == NULL)
        lv_fail("allocation");
    lv_blocks = a;
}

__attribute__((noinline)) static uintptr_t *lv_alloc_block(void)
{
    uintptr_t *p = malloc(lv_block_bytes); /* LV-ALLOC scan-block */
    if (p == NULL)
        lv_fail("allocation");
    return p;
}

__attribute__((noinline)) static void lv_leak_block(size_t k)
{
    uintptr_t *p = malloc(lv_block_bytes); /* LV-ALLOC scan-leak */
    if (p == NULL)
        lv_fail("allocation");
    lv_sink = p;
    for (size_t w = LV_LINK0; w < LV_LINK0 + LV_LINKS; w++)
        p[w] = k;
    lv_fill_data(p, k);
    lv_sink = NULL;
}

// Heapsort of the block pointers by address (qsort may call malloc).
static void lv_sift_down(uintptr_t **a, size_t root, size_t n)
{
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && (uintptr_t)a[child + 1] > (uintptr_t)a[child])
            child++;
        if ((uintptr_t)a[root] >= (uintptr_t)a[child])
            return;
        uintptr_t *t = a[root];
        a[root] = a[child];
        a[child] = t;
    }
}

static void lv_sort_by_address(uintptr_t **a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        lv_sift_down(a, i, n);
    for (size_t end = n; end-- > 1;) {
        uintptr_t *t = a[0];
        a[0] = a[end];
        a[end] = t;
        lv_sift_down(a, 0, end);
    }
}

__attribute__((noinline)) static void lv_build(void)
{
    size_t n = lv_nblocks, leak_every = n / LV_LEAKED, leaked = 0;
    lv_alloc_array(n);
    uintptr_t **a = lv_blocks;
    for (size_t i = 0; i < n; i++) {
        if (i % leak_every == 0 && leaked < LV_LEAKED)
            lv_leak_block(leaked++);
        a[i] = lv_alloc_block();
    }
    lv_sort_by_address(a, n);
    for (size_t i = 0; i < n; i++) {
        uintptr_t *b = a[i];
        b[LV_LINK0] = (uintptr_t)a[(i + 1) % n];
        b[LV_LINK0 + 1] = (uintptr_t)a[(i + n / 2) % n];
        b[LV_LINK0 + 2] = (uintptr_t)a[(size_t)((i * 2654435761u) % n)];
        b[LV_LINK0 + 3] = (uintptr_t)a[n - 1 - i];
        lv_fill_data(b, i);
    }
    if (leaked != LV_LEAKED)
        lv_fail("leak count check");
}

// Walks the pages spanned by the blocks, in address order. With dirty = D > 0
// (lv_pages known), adds 1 (mod 4096) to the first data word of a block in each
// of the selected D pages. Returns the number of pages (dirty = 0) or pages written.
static size_t lv_walk_pages(size_t dirty)
{
    size_t pages = 0, written = 0;
    uintptr_t done = 0; // pages below this page number are counted
    for (size_t i = 0; i < lv_nblocks; i++) {
        uintptr_t start = (uintptr_t)lv_blocks[i], end = start + lv_block_bytes;
        uintptr_t links = start + LV_LINK0 * sizeof(uintptr_t);
        uintptr_t data = links + LV_LINKS * sizeof(uintptr_t); // the data word after the links
        uintptr_t page = start >> LV_PAGE_SHIFT, last = (end - 1) >> LV_PAGE_SHIFT;
        if (page < done)
            page = done;
        for (; page <= last; page++, pages++) {
            if (dirty != 0 && (pages + 1) * dirty / lv_pages != pages * dirty / lv_pages) {
                uintptr_t word = page << LV_PAGE_SHIFT;
                if (word < start)
                    word = start;
                else if (word >= links && word < data)
                    word = data; // in the same page: the page starts at most 32 bytes before it
                volatile uintptr_t *w = (volatile uintptr_t *)word;
                *w = (*w + 1) & 0xfff;
                written++;
            }
        }
        if (last + 1 > done)
            done = last + 1;
    }
    return dirty != 0 ? written : pages;
}

__attribute__((noinline)) static void lv_free_all(void)
{
    for (size_t i = 0; i < lv_nblocks; i++)
        free(lv_blocks[i]);
    free(lv_blocks);
    lv_blocks = NULL;
}

// One line from fd 0 without its '\n', cut to cap - 1 characters. Returns its
// full length (>= cap: too long), or -1 at end of input.
static long lv_read_line(char *line, size_t cap)
{
    static char buf[256];
    static size_t pos, len;
    size_t n = 0;
    int any = 0;
    for (;;) {
        if (pos == len) {
            ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break; // end of input (a read error counts as the end)
            pos = 0;
            len = (size_t)r;
        }
        char c = buf[pos++];
        any = 1;
        if (c == '\n')
            break;
        if (n + 1 < cap)
            line[n] = c;
        n++;
    }
    line[n < cap ? n : cap - 1] = '\0';
    return any ? (long)n : -1;
}

int main(int argc, char **argv)
{
    unsigned long mib = 64, block = 4096;
    int bad_mib = argc > 1 && (lv_parse(argv[1], &mib) != 0 || mib < 1 || mib > 4096);
    int bad_block = argc > 2 && (lv_parse(argv[2], &block) != 0 || block < 64 || block > 65536 ||
                                 block % 8 != 0);
    if (argc > 3 || bad_mib || bad_block) {
        lv_say("usage: %s [MIB (1..4096, default 64) [BLOCK (64..65536, multiple of 8, default 4096)]]\n",
               LV_NAME);
        return 2;
    }
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    lv_block_bytes = block;
    lv_nblocks = (size_t)(mib << 20) / block;
    lv_build();
    lv_scrub_stack();
    lv_pages = lv_walk_pages(0);
    lv_say("lv-prog %s ready-scan blocks=%zu bytes=%zu pages=%zu\n", LV_NAME, lv_nblocks,
           lv_nblocks * lv_block_bytes, lv_pages);
    char line[64];
    long length;
    while ((length = lv_read_line(line, sizeof line)) >= 0) {
        unsigned long permille;
        if (length < (long)sizeof line && strcmp(line, "quit") == 0)
            break;
        if (length < (long)sizeof line && strncmp(line, "dirty ", 6) == 0 &&
            lv_parse(line + 6, &permille) == 0 && permille <= 1000) {
            size_t want = lv_pages * permille / 1000;
            size_t written = want != 0 ? lv_walk_pages(want) : 0;
            if (written != want)
                lv_fail("dirty count check");
            lv_say("lv-prog %s dirtied pages=%zu\n", LV_NAME, written);
        } else {
            lv_say("lv-prog %s unknown command\n", LV_NAME);
        }
    }
    lv_free_all();
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
