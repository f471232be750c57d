// lv-leak-hold: blocks that only a blocked thread's registers or stack refer to.
//
//   usage: lv-leak-hold
//
// Four blocks, each from its own noinline helper. The helpers return the
// pointer (or drop it); no pointer to any of them is ever stored in a global.
// An empty asm that takes the pointer as an input makes it escape, so the
// compiler cannot drop the allocation. Tags hold-r15-72, hold-stack-88,
// hold-interior-104, hold-dropped-120:
//
//   r15       72 bytes  the only reference while blocked is callee-saved
//                       register r15 of the blocked thread (a register
//                       variable, an operand of the raw syscalls)
//   stack     88 bytes  the only reference is the volatile local `on_stack`
//                       in lv_hold_and_block's frame
//   interior 104 bytes  the only reference is the volatile local `interior`
//                       = start + 40 (an interior pointer)
//   dropped  120 bytes  dropped by its helper before blocking: definitely
//                       lost, also at exit
//
// Then it scrubs the dead stack, moves the 72-byte pointer into r15, and makes
// only raw `syscall` instructions (inline asm): write "lv-prog lv-leak-hold
// blocked", then pause(). No function is called while r15 holds the pointer,
// so nothing can save r15 to memory. SIGUSR1 (sigaction, no SA_RESTART)
// interrupts the wait: the program frees the 72-, 88- and 104-byte blocks,
// scrubs its stack, prints done and exits 0. At exit only the 120-byte block
// is outstanding. Other signals keep their default action.
// Expected results (and valgrind's view): LEAK-PROGRAMS.md. Allocating lines
// carry /* LV-ALLOC <tag> */.
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LV_NAME "lv-leak-hold"

static volatile sig_atomic_t lv_resumed;

#include "lv-prog.h"

// Checks and fills a new block; the asm makes the pointer escape (no global).
__attribute__((noinline)) static void *lv_touch(void *p, size_t size, int byte)
{
    if (p == NULL)
        lv_fail("allocation");
    memset(p, byte, size);
    __asm__ volatile("" : : "r"(p) : "memory");
    return p;
}


__attribute__((noinline)) static void *lv_hold_alloc_72(void)
{
    void *p = malloc(72); /* LV-ALLOC hold-r15-72 */
    return lv_touch(p, 72, 0x72);
}

__attribute__((noinline)) static void *lv_hold_alloc_88(void)
{
    void *p = malloc(88); /* LV-ALLOC hold-stack-88 */
    return lv_touch(p, 88, 0x88);
}

__attribute__((noinline)) static void *lv_hold_alloc_104(void)
{
    void *p = malloc(104); /* LV-ALLOC hold-interior-104 */
    return lv_touch(p, 104, 0x04);
}

__attribute__((noinline)) static void lv_hold_drop_120(void)
{
    void *p = malloc(120); /* LV-ALLOC hold-dropped-120 */
    lv_touch(p, 120, 0x20);
}

static void lv_on_sigusr1(int sig)
{
    (void)sig;
    lv_resumed = 1;
}

// Holds the three kept blocks while it waits in the raw pause syscall. The
// 72-byte pointer goes into r15 only after the last call: a callee that uses
// r15 would save it in its own frame, leaving a copy below SP. From then on
// only raw syscalls run (write "blocked", pause), so r15 is never spilled.
__attribute__((noinline)) static void lv_hold_and_block(void)
{
    static const char blocked[] = "lv-prog " LV_NAME " blocked\n";
    void *volatile pending = lv_hold_alloc_72(); // cleared once r15 holds it
    void *volatile on_stack = lv_hold_alloc_88();
    char *volatile interior = (char *)lv_hold_alloc_104() + 40;
    lv_hold_drop_120();
    lv_scrub_stack(); // no stale copy of any of the four pointers below SP
    register void *in_r15 __asm__("r15") = pending;
    pending = NULL;
    long nr = SYS_write;
    __asm__ volatile("syscall"
                     : "+a"(nr), "+r"(in_r15)
                     : "D"((long)STDOUT_FILENO), "S"(blocked), "d"(sizeof blocked - 1)
                     : "rcx", "r11", "memory");
    if (nr != (long)(sizeof blocked - 1))
        _exit(2);
    while (!lv_resumed) {
        nr = SYS_pause; // returns -EINTR once the SIGUSR1 handler has run
        // "+r": as far as the compiler knows the syscall may change r15, so it
        // cannot keep a second copy of the pointer (in rbx, say) for the free.
        __asm__ volatile("syscall" : "+a"(nr), "+r"(in_r15) : : "rcx", "r11", "memory");
    }
    free(in_r15);
    free(on_stack);
    free(interior - 40);
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        lv_say("usage: %s\n", LV_NAME);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = lv_on_sigusr1; // sa_flags = 0: no SA_RESTART
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        lv_fail("sigaction");
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    // Dynamic build: binds explicit_bzero's PLT entry now. Lazy binding saves the
    // caller's registers in a frame below the scrubbed area, where they would stay.
    lv_scrub_stack();
    lv_hold_and_block();
    lv_scrub_stack();
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
