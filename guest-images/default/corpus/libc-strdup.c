// Blocks allocated inside glibc for the caller (strdup, strndup, asprintf, realpath), the way
// valgrind's suites meet them: two kept in globals, two dropped.
// Expected: strdup's and asprintf's blocks still reachable, strndup's and realpath's definitely lost.
#include "corpus.h"
#include <limits.h>
#include <stdio.h>

char *kept_copy, *kept_text;

__attribute__((noinline)) static void work(void)
{
    kept_copy = strdup("a string kept in a global");
    char *dropped = strndup("a string that is dropped at once", 20);
    CORPUS_ESCAPE(dropped);
    if (asprintf(&kept_text, "%d-%s", 42, "formatted") < 0)
        corpus_fail("asprintf");
    char *resolved = realpath("/", NULL);
    CORPUS_ESCAPE(resolved);
    if (kept_copy == NULL || dropped == NULL || resolved == NULL)
        corpus_fail("strdup");
}

int main(void)
{
    work();
    return 0;
}
