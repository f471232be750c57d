// Scenario of valgrind memcheck/tests/leak-tree.c: a binary tree of 7 nodes held by a global; then
// one subtree is cut off (its root's pointer overwritten) and the whole tree is dropped in a
// second phase: a cut subtree's root is definitely lost and its children indirectly lost.
#include "corpus.h"

struct tree {
    struct tree *left, *right;
    char payload[8];
};

__attribute__((noinline)) static struct tree *make(struct tree *left, struct tree *right)
{
    struct tree *t = corpus_malloc(sizeof *t);
    memset(t, 0, sizeof *t);
    t->left = left;
    t->right = right;
    return t;
}

struct tree *kept, *dropped;

__attribute__((noinline)) static void build(void)
{
    kept = make(make(make(NULL, NULL), make(NULL, NULL)), make(make(NULL, NULL), make(NULL, NULL)));
    kept->left = NULL;   // the left subtree (3 nodes) is lost
    dropped = make(make(NULL, NULL), make(NULL, NULL));
    dropped = NULL;      // a whole 3-node tree is lost
}

int main(void)
{
    build();
    return 0;
}
