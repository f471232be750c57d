// Scenario of valgrind memcheck/tests/leak-cases.c: the nine pointer chains of valgrind's leak
// categories, each block 16 bytes (room for an interior pointer): start and interior pointers
// from roots (globals) and from other blocks. Expected classes are valgrind's, case by case:
// 1-2 still reachable, 3 definitely lost, 4 and 9 definitely + indirectly lost, 5-8 possibly lost.
#include "corpus.h"

struct node {
    struct node *next;
    char padding[8];
};

__attribute__((noinline)) static struct node *make(struct node *next)
{
    struct node *n = corpus_malloc(sizeof *n);
    memset(n, 0, sizeof *n);
    n->next = next;
    return n;
}

struct node *p1, *p2, *p3, *p4, *p5, *p6, *p7, *p8, *p9;

__attribute__((noinline)) static void build(void)
{
    p1 = make(NULL);                          // 1: reachable
    p2 = make(make(NULL));                    // 2: reachable, reachable
    CORPUS_ESCAPE(make(NULL));                // 3: definitely lost
    CORPUS_ESCAPE(make(make(NULL)));          // 4: definitely lost, indirectly lost
    p5 = (struct node *)((char *)make(NULL) + 8);              // 5: possibly lost
    p6 = make(make(NULL));                                     // 6: reachable, possibly lost
    p6->next = (struct node *)((char *)p6->next + 8);
    p7 = (struct node *)((char *)make(make(NULL)) + 8);        // 7: possibly, possibly
    p8 = make(make(NULL));                                     // 8: possibly, possibly
    p8->next = (struct node *)((char *)p8->next + 8);
    p8 = (struct node *)((char *)p8 + 8);
    p9 = make(make(NULL));                                     // 9: definitely, indirectly
    p9->next = (struct node *)((char *)p9->next + 8);
    p9 = NULL;
}

int main(void)
{
    build();
    return 0;
}
