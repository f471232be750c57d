// Scenario of valgrind memcheck/tests/leak_cpp_interior.cpp: interior pointers that valgrind's
// four leak-check heuristics recognise (a std::string's character data, a new[] array of a type
// with a destructor, a length-prefixed buffer, the second base of a multiply inherited object),
// each held only through such a pointer in a global, and one plain interior pointer.
// Expected: valgrind's classes with its default heuristics (all).
#include "corpus.h"
#include <string>

struct Counted {
    ~Counted() {}
    long value;
};
struct Base1 {
    virtual ~Base1() {}
    long a;
};
struct Base2 {
    virtual ~Base2() {}
    long b;
};
struct Derived : Base1, Base2 {
    long c;
};

std::string *text_holder;
const char *text_data;
Counted *counted;
long *length64_data;
Base2 *second_base;
char *plain_interior;

__attribute__((noinline)) static void build()
{
    text_holder = new std::string(40, 'x');
    text_data = text_holder->data();
    text_holder = nullptr;                     // only the string's data pointer is left
    counted = new Counted[4];                  // pointer 8 bytes into the block
    long *with_length = static_cast<long *>(corpus_malloc(8 + 64));
    with_length[0] = 64;
    length64_data = with_length + 1;           // pointer past a 64-bit length
    second_base = new Derived;                 // pointer to the Base2 part
    plain_interior = static_cast<char *>(corpus_malloc(48)) + 20;
}

int main()
{
    build();
    return 0;
}
