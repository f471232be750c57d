// Shared by the lv-leak-* / lv-alloc-clean test programs (C and C++): output
// through write(2) only, so stdio never allocates a buffer that would show up
// among the program's own blocks. Define LV_NAME before including.
#ifndef LV_PROG_H
#define LV_PROG_H
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((format(printf, 1, 2), unused)) static void lv_say(const char *fmt, ...)
{
    char line[200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n >= (int)sizeof line)
        n = sizeof line - 1;
    if (write(STDOUT_FILENO, line, (size_t)n) < 0)
        _exit(2);
}

__attribute__((noinline, unused)) static void lv_fail(const char *what)
{
    lv_say("lv-prog %s %s failed\n", LV_NAME, what);
    _exit(3);
}

/// A decimal argument: 0 on success, -1 for anything else (sign, junk, overflow).
__attribute__((unused)) static int lv_parse(const char *text, unsigned long *value)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-')
        return -1;
    *value = v;
    return 0;
}
/// Clears 16 KiB of dead stack below the caller, so no stale copy of a dropped pointer is left
/// in a finished frame for a conservative scan to find (explicit_bzero: never optimized out).
__attribute__((noinline, unused)) static void lv_scrub_stack(void)
{
    char pad[16384];
    explicit_bzero(pad, sizeof pad);
    __asm__ volatile("" : : "r"(pad) : "memory");
}
#endif
