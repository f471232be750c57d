// Scenario of compiler-rt test/lsan/TestCases/use_unaligned.cpp: the only copy of the pointer
// is stored at an odd offset in a global buffer. Scans look at aligned words only (valgrind and
// LeakSanitizer's default). Expected: 1337 bytes definitely lost.
#include "corpus.h"

char buffer[32];

int main(void)
{
    void *p = corpus_malloc(1337);
    memcpy(buffer + 3, &p, sizeof p);
    p = NULL;
    CORPUS_ESCAPE(buffer);
    return 0;
}
