// Scenario of valgrind memcheck/tests/new_nothrow.cpp and sized_delete.cpp: nothrow and sized
// forms of new and delete; the sized deletes free, one nothrow new and one array new leak.
// Expected: 100 + 400 bytes definitely lost.
#include "corpus.h"
#include <new>

struct Pair {
    long a, b;
};

__attribute__((noinline)) static void work()
{
    Pair *p = new (std::nothrow) Pair{1, 2};
    CORPUS_ESCAPE(p);
    ::operator delete(p, sizeof(Pair));
    char *leaked = new (std::nothrow) char[100];
    CORPUS_ESCAPE(leaked);
    int *array = new int[100];
    CORPUS_ESCAPE(array);
    long *freed = new long[10];
    CORPUS_ESCAPE(freed);
    ::operator delete[](freed, 10 * sizeof(long));
}

int main()
{
    work();
    return 0;
}
