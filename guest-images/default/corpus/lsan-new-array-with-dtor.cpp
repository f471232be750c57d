// Scenario of compiler-rt test/lsan/TestCases/new_array_with_dtor_0.cpp: `new T[n]` of a type
// with a destructor returns a pointer 8 bytes into the block (after the element count); a global
// keeps that pointer. Valgrind's newarray heuristic counts it: still reachable via newarray.
#include "corpus.h"

struct Holder {
    void *payload;
    ~Holder() { free(payload); }
};

Holder *holders;

int main()
{
    holders = new Holder[3];
    for (int i = 0; i < 3; i++)
        holders[i].payload = nullptr;
    return 0;
}
