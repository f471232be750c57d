// Scenario of valgrind memcheck/tests/mismatches.cpp: blocks released by the wrong family
// (new/free, new[]/delete, malloc/delete) are still released; nothing leaks, and valgrind reports
// the mismatches as errors (LeakVisor as findings). Expected: no block of the program's outstanding.
#include "corpus.h"

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

__attribute__((noinline)) static void mismatch()
{
    int *a = new int;
    CORPUS_ESCAPE(a);
    free(a);
    int *b = new int[4];
    CORPUS_ESCAPE(b);
    delete b;
    int *c = static_cast<int *>(corpus_malloc(sizeof(int)));
    delete c;
}

int main()
{
    mismatch();
    return 0;
}
