// lv-leak-deep: leaks at the bottom of long call chains, in a program built
// the way Debian builds its packages (-O2 -g, no frame pointers; build.sh):
// its stacks can be followed only through DWARF CFI (.eh_frame). Built
// dynamically (host-bin/lv-leak-deep, run with `--add`) so that valgrind on
// the host runs the very same file.
//
//   leaked: 64 bytes  malloc(64) at the bottom of a 20-function chain
//                     (lv_deep_20 -> ... -> lv_deep_1)   (tag deep-malloc-64)
//           96 bytes  calloc(4, 24) at the bottom of a 3-function chain
//                     (lv_shallow_3 -> lv_shallow_2 -> lv_shallow_1), so that
//                     the stack reaches main and below   (tag deep-calloc-96)
//
// Each link does work after its call, so none is a tail call, and is
// noinline/noclone, so each keeps its own frame and name.
#define _GNU_SOURCE
#define LV_NAME "lv-leak-deep"
#include "lv-prog.h"

void *volatile lv_sink;
volatile unsigned long lv_steps;

#define LV_LINK(name, next)                                   \
    __attribute__((noinline, noclone)) void *name(size_t size) \
    {                                                         \
        void *p = next(size);                                 \
        lv_steps += size;                                     \
        return p;                                             \
    }

__attribute__((noinline, noclone)) void *lv_deep_1(size_t size)
{
    void *p = malloc(size); /* LV-ALLOC deep-malloc-64 */
    if (p == NULL)
        lv_fail("malloc");
    memset(p, 0x5a, size);
    lv_steps += 1;
    return p;
}
LV_LINK(lv_deep_2, lv_deep_1)
LV_LINK(lv_deep_3, lv_deep_2)
LV_LINK(lv_deep_4, lv_deep_3)
LV_LINK(lv_deep_5, lv_deep_4)
LV_LINK(lv_deep_6, lv_deep_5)
LV_LINK(lv_deep_7, lv_deep_6)
LV_LINK(lv_deep_8, lv_deep_7)
LV_LINK(lv_deep_9, lv_deep_8)
LV_LINK(lv_deep_10, lv_deep_9)
LV_LINK(lv_deep_11, lv_deep_10)
LV_LINK(lv_deep_12, lv_deep_11)
LV_LINK(lv_deep_13, lv_deep_12)
LV_LINK(lv_deep_14, lv_deep_13)
LV_LINK(lv_deep_15, lv_deep_14)
LV_LINK(lv_deep_16, lv_deep_15)
LV_LINK(lv_deep_17, lv_deep_16)
LV_LINK(lv_deep_18, lv_deep_17)
LV_LINK(lv_deep_19, lv_deep_18)
LV_LINK(lv_deep_20, lv_deep_19)

__attribute__((noinline, noclone)) void *lv_shallow_1(size_t size)
{
    void *p = calloc(4, size); /* LV-ALLOC deep-calloc-96 */
    if (p == NULL)
        lv_fail("calloc");
    lv_steps += 1;
    return p;
}
LV_LINK(lv_shallow_2, lv_shallow_1)
LV_LINK(lv_shallow_3, lv_shallow_2)

int main(void)
{
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    lv_sink = lv_deep_20(64);
    lv_sink = NULL;
    lv_sink = lv_shallow_3(24);
    lv_sink = NULL;
    lv_say("lv-prog %s done steps=%lu\n", LV_NAME, lv_steps);
    return 0;
}
