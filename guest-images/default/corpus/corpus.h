// Shared by the corpus cases (CORPUS.md): no stdio, so nothing is allocated that a case does
// not ask for itself, and the same binary behaves alike under valgrind on the host and under
// LeakVisor in the guest.
#ifndef CORPUS_H
#define CORPUS_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/// Makes the compiler believe `p` escapes (so -O2 keeps the allocation) without storing it.
#define CORPUS_ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

/// Reports a failed step on stderr and exits with status 3.
__attribute__((noreturn, noinline, unused)) static void corpus_fail(const char *what)
{
    if (write(STDERR_FILENO, what, strlen(what)) < 0 || write(STDERR_FILENO, " failed\n", 8) < 0)
        _exit(4);
    _exit(3);
}

/// malloc that never returns NULL.
__attribute__((noinline, unused)) static void *corpus_malloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL && size != 0)
        corpus_fail("malloc");
    CORPUS_ESCAPE(p);
    return p;
}
#endif
