// Prints the RFLAGS the host CPU produces for the flag-setting operations PrologueInstruction
// executes, one "<op> <a> <b> <rflags>" line (hex) per operand pair, so the test can replay each
// pair through the emulator. Register forms set the same flags as the memory/immediate forms.
#include <stdint.h>
#include <stdio.h>

static uint64_t state = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {  // splitmix64
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t cmp8(uint8_t a, uint8_t b) {
    uint64_t flags;
    __asm__ volatile("cmp %b2, %b1\n\tpushfq\n\tpop %0" : "=r"(flags) : "q"(a), "q"(b) : "cc");
    return flags;
}
static uint64_t cmp32(uint32_t a, uint32_t b) {
    uint64_t flags;
    __asm__ volatile("cmp %k2, %k1\n\tpushfq\n\tpop %0" : "=r"(flags) : "r"(a), "r"(b) : "cc");
    return flags;
}
static uint64_t sub64(uint64_t a, uint64_t b) {
    uint64_t flags;
    __asm__ volatile("sub %2, %1\n\tpushfq\n\tpop %0" : "=r"(flags), "+r"(a) : "r"(b) : "cc");
    return flags;
}
static uint64_t test32(uint32_t a, uint32_t b) {
    uint64_t flags;
    __asm__ volatile("test %k2, %k1\n\tpushfq\n\tpop %0" : "=r"(flags) : "r"(a), "r"(b) : "cc");
    return flags;
}
static uint64_t test64(uint64_t a, uint64_t b) {
    uint64_t flags;
    __asm__ volatile("test %2, %1\n\tpushfq\n\tpop %0" : "=r"(flags) : "r"(a), "r"(b) : "cc");
    return flags;
}

static const uint64_t interesting[] = {
    0, 1, 2, 0xF, 0x10, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
    0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF, 0x7FFC12345678,
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

int main(void) {
    for (unsigned a = 0; a < 256; a++)
        for (unsigned b = 0; b < 256; b++) printf("cmp8 %x %x %llx\n", a, b, (unsigned long long)cmp8(a, b));
    uint64_t values[COUNT(interesting) + 200];
    for (unsigned i = 0; i < COUNT(values); i++) values[i] = i < COUNT(interesting) ? interesting[i] : next();
    for (unsigned i = 0; i < COUNT(values); i++) {
        uint32_t a = (uint32_t)values[i];
        for (int imm = -128; imm < 128; imm++)  // cmp dword [m], imm8: sign-extended immediate
            printf("cmp32 %x %x %llx\n", a, (uint32_t)imm, (unsigned long long)cmp32(a, (uint32_t)imm));
        for (unsigned j = 0; j < COUNT(values); j += 7) {
            printf("test32 %x %x %llx\n", a, (uint32_t)values[j], (unsigned long long)test32(a, (uint32_t)values[j]));
            printf("test64 %llx %llx %llx\n", (unsigned long long)values[i], (unsigned long long)values[j],
                   (unsigned long long)test64(values[i], values[j]));
        }
        for (int imm = -128; imm < 128; imm += 3)  // sub rsp, imm8
            printf("sub64 %llx %llx %llx\n", (unsigned long long)values[i], (unsigned long long)(int64_t)imm,
                   (unsigned long long)sub64(values[i], (uint64_t)(int64_t)imm));
        int32_t imm32 = (int32_t)next();  // sub rsp, imm32
        printf("sub64 %llx %llx %llx\n", (unsigned long long)values[i], (unsigned long long)(int64_t)imm32,
               (unsigned long long)sub64(values[i], (uint64_t)(int64_t)imm32));
    }
    return 0;
}
