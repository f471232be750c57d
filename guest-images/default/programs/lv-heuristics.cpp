// lv-heuristics: one block for each of valgrind's leak-check heuristics, each
// referenced only by an interior pointer of the kind the heuristic accepts, and
// one block whose interior pointer matches none (expected classes in
// LEAK-PROGRAMS.md, checked against valgrind on the host):
//
//   stdstring  33 bytes: length 8, capacity 8, refcount 0, "Valgrind\0"
//              (the pre-C++11 libstdc++ string rep), pointer at +24
//   length64   39 bytes: first 8 bytes hold 31 (the size of the rest), pointer at +8
//   newarray   new LvCounted[3] (an 8-byte element count, then 3 x 16 bytes:
//              56 bytes), pointer at +8 (what new[] returns)
//   multipleinheritance  new LvBoth (LvLeft, LvRight each with a vtable), held
//              as LvRight*, an interior pointer to its second vtable pointer
//   none       32 bytes, pointer at +16, first word 0: possibly lost
//
// Every pointer is kept in a global until exit. With valgrind's default
// (--leak-check-heuristics=all) the first four are still reachable, via their
// heuristic; with =none all five are possibly lost.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#define LV_NAME "lv-heuristics"
#include "lv-prog.h"

struct LvCounted {
    uint64_t a = 1, b = 2;
    ~LvCounted() { a = 0; }
};
struct LvLeft {
    char l = 'l';
    virtual ~LvLeft() {}
};
struct LvRight {
    char r = 'r';
    virtual ~LvRight() {}
};
struct LvBoth : LvLeft, LvRight {
    char both = 'b';
    ~LvBoth() override {}
};

char *volatile lv_string_chars;
char *volatile lv_length_payload;
LvCounted *volatile lv_array;
LvRight *volatile lv_right;
char *volatile lv_middle;

static void *lv_alloc(size_t size)
{
    void *p = malloc(size); /* LV-ALLOC heuristics-malloc */
    if (p == nullptr)
        lv_fail("malloc");
    return p;
}

__attribute__((noinline)) static void lv_make(void)
{
    uint64_t *rep = static_cast<uint64_t *>(lv_alloc(33));
    rep[0] = 8;
    rep[1] = 8;
    rep[2] = 0;
    memcpy(rep + 3, "Valgrind", 9);
    lv_string_chars = reinterpret_cast<char *>(rep + 3);

    uint64_t *sized = static_cast<uint64_t *>(lv_alloc(39));
    sized[0] = 31;
    memset(sized + 1, 0x33, 31);
    lv_length_payload = reinterpret_cast<char *>(sized + 1);

    lv_array = new LvCounted[3]; /* LV-ALLOC heuristics-newarray */
    lv_right = new LvBoth; /* LV-ALLOC heuristics-multiple */

    uint64_t *plain = static_cast<uint64_t *>(lv_alloc(32));
    memset(plain, 0, 32);
    lv_middle = reinterpret_cast<char *>(plain) + 16;
}

int main()
{
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    lv_make();
    lv_scrub_stack();
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
