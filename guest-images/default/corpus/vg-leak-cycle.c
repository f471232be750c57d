// Scenario of valgrind memcheck/tests/leak-cycle.c: rings of blocks whose last outside pointer
// is dropped: each ring counts one block definitely lost and the rest indirectly lost; a ring
// still held by a global is still reachable. Rings of 2, 3 and 1 (self) blocks of 32 bytes.
#include "corpus.h"

struct ring {
    struct ring *next;
    char payload[24];
};

__attribute__((noinline)) static struct ring *make_ring(int length)
{
    struct ring *first = corpus_malloc(sizeof *first), *last = first;
    memset(first, 0, sizeof *first);
    for (int i = 1; i < length; i++) {
        struct ring *r = corpus_malloc(sizeof *r);
        memset(r, 0, sizeof *r);
        last->next = r;
        last = r;
    }
    last->next = first;
    return first;
}

struct ring *kept;

__attribute__((noinline)) static void build(void)
{
    CORPUS_ESCAPE(make_ring(2));
    CORPUS_ESCAPE(make_ring(3));
    CORPUS_ESCAPE(make_ring(1));
    kept = make_ring(3);
}

int main(void)
{
    build();
    return 0;
}
