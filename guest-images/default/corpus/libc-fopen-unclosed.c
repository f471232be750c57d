// A stream opened and never closed, as in many programs of the peers' suites: glibc keeps every
// open FILE on its own list, so the FILE and its buffer stay reachable; a closed stream leaves
// nothing. Expected: the FILE (472 bytes) and its buffer still reachable.
#include "corpus.h"
#include <stdio.h>

int main(void)
{
    FILE *closed = fopen("/proc/self/stat", "r");
    if (closed == NULL || fgetc(closed) == EOF)
        corpus_fail("fopen");
    fclose(closed);
    FILE *open = fopen("/proc/self/stat", "r");
    if (open == NULL || fgetc(open) == EOF)
        corpus_fail("fopen");
    return 0;
}
