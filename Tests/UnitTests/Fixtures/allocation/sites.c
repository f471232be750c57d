// Allocator symbols of every kind AllocatorSiteFinder tells apart, in one gcc-built executable:
// calloc and free are PLT imports (undefined here); the others are defined below.
#include <stdlib.h>

// Armable: `sub rsp, 8`.
__asm__(".text\n.globl aligned_alloc\n.type aligned_alloc, @function\naligned_alloc:\n"
        "\tsub $8, %rsp\n\tadd $8, %rsp\n\txor %eax, %eax\n\tret\n.size aligned_alloc, .-aligned_alloc\n");

// Armable, two names at one address: `mov rax, rsi`.
__asm__(".text\n.globl __libc_reallocarray\n.type __libc_reallocarray, @function\n__libc_reallocarray:\n"
        "\tmov %rsi, %rax\n\tret\n.size __libc_reallocarray, .-__libc_reallocarray\n"
        ".globl reallocarray\n.type reallocarray, @function\n.set reallocarray, __libc_reallocarray\n"
        ".size reallocarray, 4\n");

// Unarmable: starts with a call.
__asm__(".text\n.globl valloc\n.type valloc, @function\nvalloc:\n"
        "\tcall 1f\n1:\tpop %rax\n\tret\n.size valloc, .-valloc\n");

// Unarmable: code in a non-executable segment.
__asm__(".section .rodata\n.globl memalign\n.type memalign, @function\nmemalign:\n"
        "\t.byte 0x55, 0xc3\n.size memalign, 2\n.text\n");

// Unarmable: a GNU indirect function (the symbol is its resolver).
static void *pvalloc_implementation(size_t size) { return (void *)size; }
static void *(*resolve_pvalloc(void))(size_t) { return pvalloc_implementation; }
void *pvalloc(size_t) __attribute__((ifunc("resolve_pvalloc")));

// Ignored: no size.
__asm__(".text\n.globl _Znwm\n.type _Znwm, @function\n_Znwm:\n\tret\n");

int main(int argc, char **argv) {
    (void)argv;
    void *block = calloc((size_t)argc, 16);
    free(block);
    return block == NULL;
}
