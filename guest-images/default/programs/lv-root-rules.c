// lv-root-rules: what counts as a root, one case per mode (expected classes in
// LEAK-PROGRAMS.md, checked against valgrind on the host).
//
//   exit-stale  leaks a 48-byte block (tag roots-exit-stale) whose only copies
//               are stale ones in dead frames below where exit() is entered:
//               a helper fills a deep local array with the pointer and returns,
//               then main returns. LeakSanitizer's rule (scan the exiting
//               thread's stack only from exit's frame) and valgrind call it
//               definitely lost; a scan from the stack pointer at exit_group
//               finds the stale copies that exit's and __run_exit_handlers'
//               frames keep (exit's `sub $8, %rsp` slot is planted on purpose).
//   big-chunk   leaks a 256 KiB block (glibc serves it with mmap) that holds the
//               only pointer to a 40-byte block: 1 definite leak (262144), 1
//               indirect (40). A heap block is never a root, mmapped or not.
//   xmm         a thread keeps the only pointer to a 56-byte block in xmm5 (in a
//               busy loop) until it reads a line on stdin; meanwhile the block is
//               still reachable (a scan must read the vector registers). Then the
//               pointer is dropped and the block leaks: definitely lost at exit.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LV_NAME "lv-root-rules"

void *volatile lv_sink;

#include "lv-prog.h"

// Fills 2 KiB of this frame with the pointer, then returns: the copies stay in
// the dead stack below main's frame.
__attribute__((noinline)) static void lv_plant_stale(void *p)
{
    void *volatile copies[256];
    for (int i = 0; i < 256; i++)
        copies[i] = p;
    __asm__ volatile("" : : "r"(copies) : "memory");
}

// Writes the pointer 8 bytes below its return-address slot: the slot that exit()'s
// `sub $8, %rsp` later takes for its frame without writing it, when the caller
// calls exit() next from the same stack depth.
__attribute__((naked, noinline)) static void lv_plant_below_frame(void *p)
{
    (void)p;
    __asm__("movq %rdi, -8(%rsp)\n\tret");
}

__attribute__((noinline)) static void *lv_exit_stale(void)
{
    void *p = malloc(48); /* LV-ALLOC roots-exit-stale */
    if (p == NULL)
        lv_fail("malloc");
    memset(p, 0x5a, 48);
    lv_plant_stale(p);
    return p;
}

__attribute__((noinline)) static void lv_big_chunk(void)
{
    void **big = malloc(256 << 10); /* LV-ALLOC roots-big-chunk */
    void *small = malloc(40); /* LV-ALLOC roots-big-chunk-small */
    if (big == NULL || small == NULL)
        lv_fail("malloc");
    memset(big, 0, 256 << 10);
    memset(small, 0x11, 40);
    big[100] = small;
    lv_sink = big;
    lv_sink = NULL;
}

static volatile int lv_xmm_stop;
static volatile int lv_xmm_holding;

// Moves the pointer into xmm5, clears every other copy, and spins until told
// to stop; then clears xmm5 too.
__attribute__((noinline)) static void *lv_xmm_thread(void *unused)
{
    (void)unused;
    void *volatile p = malloc(56); /* LV-ALLOC roots-xmm */
    if (p == NULL)
        lv_fail("malloc");
    // Into xmm5; then no general register keeps a copy (malloc's result may linger in rax).
    __asm__ volatile("movq %0, %%xmm5\n\t"
                     "xor %%eax, %%eax\n\txor %%ecx, %%ecx\n\txor %%edx, %%edx\n\txor %%esi, %%esi\n\t"
                     "xor %%edi, %%edi\n\txor %%r8d, %%r8d\n\txor %%r9d, %%r9d\n\txor %%r10d, %%r10d\n\t"
                     "xor %%r11d, %%r11d\n\txor %%ebx, %%ebx\n\txor %%r12d, %%r12d\n\txor %%r13d, %%r13d\n\t"
                     "xor %%r14d, %%r14d\n\txor %%r15d, %%r15d"
                     : : "m"(p)
                     : "xmm5", "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "rbx", "r12", "r13", "r14", "r15",
                       "memory");
    p = NULL;
    lv_xmm_holding = 1;
    while (!lv_xmm_stop)
        __asm__ volatile("pause" : : : "memory");
    __asm__ volatile("pxor %%xmm5, %%xmm5" : : : "xmm5");
    return NULL;
}

static void lv_xmm(void)
{
    pthread_t thread;
    if (pthread_create(&thread, NULL, lv_xmm_thread, NULL) != 0)
        lv_fail("pthread_create");
    while (!lv_xmm_holding)
        usleep(1000);
    lv_scrub_stack();
    lv_say("lv-prog %s holding\n", LV_NAME);
    char line[16];
    if (read(STDIN_FILENO, line, sizeof line) < 0)
        lv_fail("read");
    lv_xmm_stop = 1;
    pthread_join(thread, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        lv_say("usage: %s exit-stale|big-chunk|xmm\n", LV_NAME);
        return 2;
    }
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    if (strcmp(argv[1], "exit-stale") == 0) {
        // Last: nothing may run over the dead frames between this and exit().
        lv_say("lv-prog %s done\n", LV_NAME);
        lv_plant_below_frame(lv_exit_stale());
        exit(0);
    } else if (strcmp(argv[1], "big-chunk") == 0) {
        lv_big_chunk();
        lv_scrub_stack();
    } else if (strcmp(argv[1], "xmm") == 0) {
        lv_xmm();
    } else {
        lv_say("usage: %s exit-stale|big-chunk|xmm\n", LV_NAME);
        return 2;
    }
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
