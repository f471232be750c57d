// lv-leak-cxx: the libstdc++ operator new/delete family.
//
//   leaked (3 blocks, 152 bytes):
//     new int                        4 bytes  operator new(size_t)     tag cxx-new-int
//     new char[100]                100 bytes  operator new[](size_t)   tag cxx-new-char-array
//     new LvWidget                  48 bytes  operator new(size_t)     tag cxx-new-widget
//                                   (sizeof(LvWidget) == 48: vptr, int + pad, double[4])
//   freed:
//     new LvPoint (24) / delete -> sized operator delete(void*, size_t)
//     new LvWidget / delete through the virtual destructor (sized delete, 48)
//     new LvWidget[3] / delete[]: 152 bytes = 8-byte array cookie + 3 * 48;
//       the program's pointer is the block start + 8
//     new LvAligned (alignas(64), 64 bytes) / delete -> aligned new and delete
//     new (std::align_val_t(64)) int / ::operator delete(p, std::align_val_t(64))
//     new LvAligned[2] / delete[] -> aligned new[] and delete[]
//     new (std::nothrow) LvPoint / delete;  new (std::nothrow) char[64] / delete[]
//     new int[10] / delete  -- a deliberate new[]/delete mismatch (int is
//       trivially destructible, so there is no array cookie and glibc frees
//       the right block; valgrind reports "Mismatched free() / delete / delete []")
//
// Output goes through write(2), not iostreams. Expected results, including
// which operator symbols are called and libstdc++'s own allocations (the
// emergency exception pool): LEAK-PROGRAMS.md. Allocating lines carry /* LV-ALLOC <tag> */.
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <unistd.h>

#define LV_NAME "lv-leak-cxx"

void *volatile lv_sink;

#include "lv-prog.h"

__attribute__((noinline)) static void lv_check(void *p, std::size_t align)
{
    if (p == nullptr)
        lv_fail("allocation");
    if (align != 0 && (reinterpret_cast<std::uintptr_t>(p) & (align - 1)) != 0)
        lv_fail("alignment");
    lv_sink = p;
}


class LvWidget {
public:
    LvWidget() : id(++count) { values[0] = values[1] = values[2] = values[3] = 1.5 * id; }
    virtual ~LvWidget();
    virtual double sum() const { return values[0] + values[1] + values[2] + values[3]; }
    static int count;

private:
    int id;
    double values[4];
};
int LvWidget::count;
__attribute__((noinline)) LvWidget::~LvWidget() { lv_sink = nullptr; }
static_assert(sizeof(LvWidget) == 48, "LvWidget is 48 bytes");

struct LvPoint {
    long x, y, z;
};
static_assert(sizeof(LvPoint) == 24, "LvPoint is 24 bytes");

struct alignas(64) LvAligned {
    unsigned char bytes[64];
};
static_assert(sizeof(LvAligned) == 64 && alignof(LvAligned) == 64, "LvAligned is 64 bytes, 64-aligned");

// --- Leaks ----------------------------------------------------------------
__attribute__((noinline)) void lv_leak_new_int()
{
    int *p = new int(42); /* LV-ALLOC cxx-new-int */
    lv_check(p, 0);
    lv_sink = nullptr;
}

__attribute__((noinline)) void lv_leak_new_char_array()
{
    char *p = new char[100]; /* LV-ALLOC cxx-new-char-array */
    lv_check(p, 0);
    std::memset(p, 'x', 100);
    lv_sink = nullptr;
}

__attribute__((noinline)) void lv_leak_new_widget()
{
    LvWidget *w = new LvWidget; /* LV-ALLOC cxx-new-widget */
    lv_check(w, 0);
    lv_sink = nullptr;
}

// --- Freed ----------------------------------------------------------------
__attribute__((noinline)) void lv_sized_delete()
{
    LvPoint *p = new LvPoint{1, 2, 3}; /* LV-ALLOC cxx-new-point */
    lv_check(p, 0);
    delete p; // operator delete(void*, size_t 24)

    LvWidget *w = new LvWidget; /* LV-ALLOC cxx-new-widget-freed */
    lv_check(w, 0);
    if (w->sum() <= 0)
        lv_fail("widget");
    delete w; // virtual deleting destructor -> operator delete(void*, size_t 48)
}

__attribute__((noinline)) void lv_array_with_cookie()
{
    LvWidget *ws = new LvWidget[3]; /* LV-ALLOC cxx-new-widget-array */
    lv_check(ws, 0);
    delete[] ws; // operator delete[](void*, size_t 152) on ws - 8 bytes
}

__attribute__((noinline)) void lv_aligned_new()
{
    LvAligned *a = new LvAligned; /* LV-ALLOC cxx-new-aligned */
    lv_check(a, 64);
    std::memset(a->bytes, 1, sizeof a->bytes);
    delete a; // operator delete(void*, size_t 64, align_val_t 64)

    int *i = new (std::align_val_t(64)) int(7); /* LV-ALLOC cxx-new-align-val */
    lv_check(i, 64);
    ::operator delete(i, std::align_val_t(64));

    LvAligned *as = new LvAligned[2]; /* LV-ALLOC cxx-new-aligned-array */
    lv_check(as, 64);
    delete[] as; // operator delete[](void*, align_val_t 64)
}

__attribute__((noinline)) void lv_nothrow_new()
{
    LvPoint *p = new (std::nothrow) LvPoint{4, 5, 6}; /* LV-ALLOC cxx-new-nothrow */
    lv_check(p, 0);
    delete p;
    char *c = new (std::nothrow) char[64]; /* LV-ALLOC cxx-new-nothrow-array */
    lv_check(c, 0);
    delete[] c;
}

__attribute__((noinline)) void lv_mismatched_delete()
{
    int *p = new int[10]; /* LV-ALLOC cxx-new-int-array-mismatch */
    lv_check(p, 0);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
    delete p; // deliberate mismatch: new[] freed with scalar delete
#pragma GCC diagnostic pop
}

int main()
{
    lv_say("lv-prog %s ready pid=%d\n", LV_NAME, (int)getpid());
    lv_sized_delete();
    lv_array_with_cookie();
    lv_aligned_new();
    lv_nothrow_new();
    lv_mismatched_delete();
    lv_leak_new_int();
    lv_leak_new_char_array();
    lv_leak_new_widget();
    lv_scrub_stack();
    lv_sink = nullptr;
    lv_say("lv-prog %s done\n", LV_NAME);
    return 0;
}
