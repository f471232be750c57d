// lv-hostile: a guest process that attacks the monitor from user space (issue 11). Each mode
// prints one "lv-hostile MODE: ..." verdict line saying whether the guest gained anything, and
// exits 0 when the monitor held (the guest saw what real hardware would show), 1 when it did not.
//
//   lv-hostile forge RESULT SIZE [COUNT]  malloc(SIZE) faults on a tiny stack; the SIGSEGV handler
//                                         forges its return: rax=RESULT, rsp just past the slot
//                                         the monitor patched, rip=the return trampoline
//   lv-hostile lstar                      jmp to the kernel's syscall entry (LSTAR) from user mode
//   lv-hostile rostack                    enter malloc with rsp in a read-only shared file mapping
//   lv-hostile cow                        enter malloc with rsp in a private (copy-on-write)
//                                         file mapping whose page is still the page cache's
//   lv-hostile mmio BASE LENGTH COUNT     COUNT random reads and writes (1/2/4/8 bytes) of the
//                                         guest-physical range through /dev/mem, skipping the
//                                         control page's exit-status register
#define _GNU_SOURCE
#define LV_NAME "lv-hostile"
#include "lv-prog.h"
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <ucontext.h>

#define TRAMPOLINE 0x7ffffffff000UL
#define CONTROL_PAGE 0xd0000000UL

// Read by the assembly below: plain globals, so the names are the symbols.
uintptr_t lv_saved_rsp, lv_slot;
static sigjmp_buf lv_back;
static volatile int lv_phase;
static volatile uintptr_t lv_forged_result, lv_fault_address, lv_fault_rip;
static volatile int lv_fault_signal;

/// SIGSEGV/SIGBUS/SIGTRAP, on the alternate stack. In the forge's first phase: forge the return.
/// Otherwise note the fault and go back to the mode's recovery point.
static void lv_on_signal(int sig, siginfo_t *info, void *context)
{
    ucontext_t *uc = context;
    if (sig == SIGSEGV && lv_phase == 1) {
        lv_phase = 2;
        uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(lv_slot + 8);
        uc->uc_mcontext.gregs[REG_RIP] = (greg_t)TRAMPOLINE;
        uc->uc_mcontext.gregs[REG_RAX] = (greg_t)lv_forged_result;
        return;
    }
    lv_fault_signal = sig;
    lv_fault_address = (uintptr_t)info->si_addr;
    lv_fault_rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    siglongjmp(lv_back, 1);
}

static void lv_handle_faults(void)
{
    static char alternate[65536];
    stack_t ss = {.ss_sp = alternate, .ss_size = sizeof alternate};
    if (sigaltstack(&ss, NULL) != 0)
        lv_fail("sigaltstack");
    struct sigaction sa = {.sa_sigaction = lv_on_signal, .sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) || sigaction(SIGBUS, &sa, NULL) || sigaction(SIGTRAP, &sa, NULL))
        lv_fail("sigaction");
}

/// Calls `fn(size)` with rsp = `top` (16-byte aligned); returns what came back in rax.
__attribute__((noinline)) static uintptr_t lv_call_on(uintptr_t top, uintptr_t size, void *fn)
{
    uintptr_t rdi = size, rsi = top, rdx = (uintptr_t)fn, rax;
    __asm__ volatile("mov %%rsp, lv_saved_rsp(%%rip)\n\t"
                     "mov %%rsi, %%rsp\n\t"
                     "lea -8(%%rsp), %%rax\n\t"
                     "mov %%rax, lv_slot(%%rip)\n\t"
                     "call *%%rdx\n\t"
                     "mov lv_saved_rsp(%%rip), %%rsp\n\t"
                     : "=a"(rax), "+D"(rdi), "+S"(rsi), "+d"(rdx)
                     :
                     : "rcx", "r8", "r9", "r10", "r11", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
                       "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    return rax;
}

static int lv_forge(uintptr_t result, uintptr_t size, unsigned long count)
{
    // Two pages: a guard below, and 16 bytes of stack at the bottom of the upper one, so malloc
    // faults at its second push (the monitor has patched the return slot by then).
    char *area = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED || mprotect(area, 4096, PROT_NONE) != 0)
        lv_fail("mmap");
    unsigned long accepted = 0, refused = 0, other = 0;
    char detail[160] = "";
    for (unsigned long i = 0; i < count; i++) {
        lv_forged_result = result;
        lv_phase = 1;
        if (sigsetjmp(lv_back, 1) == 0) {
            uintptr_t got = lv_call_on((uintptr_t)area + 4096 + 16, size, (void *)malloc);
            if (lv_phase == 2 && got == lv_forged_result) {
                accepted++;          // the monitor took the forged return and resumed the call
            } else {
                other++;             // malloc did not fault where expected
                snprintf(detail, sizeof detail, "; last other: returned 0x%lx in phase %d", (unsigned long)got, lv_phase);
            }
        } else if (lv_fault_address == TRAMPOLINE) {
            refused++;               // the forged return was a plain fault, as on real hardware
        } else {
            other++;
            snprintf(detail, sizeof detail, "; last other: signal %d at 0x%lx (rip 0x%lx) in phase %d", lv_fault_signal,
                     (unsigned long)lv_fault_address, (unsigned long)lv_fault_rip, lv_phase);
        }
        lv_phase = 0;
    }
    lv_say("lv-hostile forge: %lu forged return(s) of 0x%lx (size %lu): %lu refused, %lu accepted, %lu other%s\n",
           count, (unsigned long)result, (unsigned long)size, refused, accepted, other, detail);
    return accepted == 0 && refused == count ? 0 : 1;
}

/// The kernel's syscall entry from /proc/kallsyms (root sees real addresses).
static uintptr_t lv_syscall_entry(void)
{
    int fd = open("/proc/kallsyms", O_RDONLY);
    if (fd < 0)
        lv_fail("open /proc/kallsyms");
    static char buf[1 << 16];
    char line[256];
    size_t used = 0;
    uintptr_t found = 0;
    ssize_t n;
    while (!found && (n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n && !found; i++) {
            if (buf[i] != '\n') {
                if (used < sizeof line - 1)
                    line[used++] = buf[i];
                continue;
            }
            line[used] = 0;
            used = 0;
            unsigned long address;
            char type, name[128];
            if (sscanf(line, "%lx %c %127s", &address, &type, name) == 3 && strcmp(name, "entry_SYSCALL_64") == 0)
                found = address;
        }
    }
    close(fd);
    return found;
}

static int lv_lstar(void)
{
    uintptr_t entry = lv_syscall_entry();
    if (entry == 0)
        lv_fail("finding entry_SYSCALL_64");
    volatile int entered = 0;
    if (sigsetjmp(lv_back, 1) == 0) {
        // What `syscall` would leave, but reached by a jump: rax = getpid, rcx = where sysret
        // would return, r11 = flags with IF set.
        uintptr_t target = entry, rax = 39;
        __asm__ volatile("lea 1f(%%rip), %%rcx\n\t"
                         "mov $0x202, %%r11\n\t"
                         "jmp *%1\n"
                         "1:\n\t"
                         : "+a"(rax)
                         : "r"(target)
                         : "rcx", "r11", "memory", "cc");
        entered = 1;
        lv_say("lv-hostile lstar: a jump to 0x%lx entered the kernel as a system call (returned %ld)\n",
               (unsigned long)entry, (long)rax);
    } else {
        lv_say("lv-hostile lstar: a jump to 0x%lx faulted like on real hardware (signal %d at 0x%lx)\n",
               (unsigned long)entry, lv_fault_signal, (unsigned long)lv_fault_address);
    }
    return entered ? 1 : 0;
}

/// Where malloc "returns" to if it ever completes on the borrowed stack: back to a sane stack,
/// then to the mode's recovery point.
__attribute__((noreturn, used)) void lv_returned_c(uintptr_t rax)
{
    lv_forged_result = rax;
    lv_fault_signal = 0;
    siglongjmp(lv_back, 2);
}
__asm__(".text\n\t.globl lv_returned\n\t.type lv_returned,@function\nlv_returned:\n\t"
        "mov lv_saved_rsp(%rip), %rsp\n\tand $-16, %rsp\n\tmov %rax, %rdi\n\tcall lv_returned_c\n\tud2\n");
void lv_returned(void);

/// Jumps into malloc(64) with rsp at `slot`, whose word is the return address lv_returned.
__attribute__((noinline)) static void lv_enter_malloc_at(uintptr_t slot)
{
    __asm__ volatile("mov %%rsp, lv_saved_rsp(%%rip)\n\t"
                     "mov %0, %%rsp\n\t"
                     "mov $64, %%edi\n\t"
                     "jmp *%1\n\t"
                     :
                     : "r"(slot), "r"((uintptr_t)malloc)
                     : "rdi", "memory");
    __builtin_unreachable();
}

/// A one-page file whose word at 4096-72 is lv_returned's address, mapped with `prot`/`flags`;
/// malloc is entered with rsp there. The file must read back exactly as written.
static int lv_stack_in_file(const char *mode, int prot, int flags)
{
    static unsigned char page[4096], back[4096];
    for (size_t i = 0; i < sizeof page; i++)
        page[i] = (unsigned char)(i * 7 + 1);
    uintptr_t ret = (uintptr_t)lv_returned;
    memcpy(page + 4096 - 72, &ret, sizeof ret);
    const char *path = "/tmp/lv-hostile-stack";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, page, sizeof page) != (ssize_t)sizeof page)
        lv_fail("writing the stack file");
    close(fd);
    fd = open(path, (prot & PROT_WRITE) && (flags & MAP_SHARED) ? O_RDWR : O_RDONLY);
    unsigned char *map = mmap(NULL, 4096, prot, flags, fd, 0);
    if (map == MAP_FAILED)
        lv_fail("mmap");
    volatile unsigned char touch = map[100];     // the page is present (read-only for a private map)
    (void)touch;
    const char *what;
    int outcome = sigsetjmp(lv_back, 1);
    if (outcome == 0)
        lv_enter_malloc_at((uintptr_t)map + 4096 - 72);
    if (outcome == 2)
        what = "malloc returned";
    else
        what = "malloc faulted";
    if (pread(fd, back, sizeof back, 0) != (ssize_t)sizeof back)
        lv_fail("reading the stack file back");
    size_t changed = 0;
    for (size_t i = 0; i < sizeof back; i++)
        changed += back[i] != page[i];
    lv_say("lv-hostile %s: %s (signal %d at 0x%lx); %zu byte(s) of the file changed\n", mode, what, lv_fault_signal,
           (unsigned long)lv_fault_address, changed);
    munmap(map, 4096);
    close(fd);
    unlink(path);
    return changed == 0 ? 0 : 1;
}

static int lv_mmio(uintptr_t base, uintptr_t length, unsigned long count)
{
    int fd = open("/dev/mem", O_RDWR | O_SYNC);
    if (fd < 0)
        lv_fail("open /dev/mem");
    // Page by page: a range a guest driver has claimed cannot be mapped (unbind the driver first).
    uintptr_t first = base & ~4095UL, pages = (((base + length + 4095) & ~4095UL) - first) / 4096;
    if (pages == 0 || pages > 4096)
        lv_fail("the range (1 to 4096 pages)");
    static volatile unsigned char *map[4096];
    unsigned long mapped = 0;
    for (uintptr_t i = 0; i < pages; i++) {
        void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(first + i * 4096));
        map[i] = m == MAP_FAILED ? NULL : m;
        mapped += m != MAP_FAILED;
    }
    uint64_t state = 0x9e3779b97f4a7c15ULL ^ base;
    unsigned long done = 0, faults = 0;
    for (unsigned long i = 0; i < count; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        unsigned width = 1u << (state & 3);
        uintptr_t physical = (base + (state >> 8) % length) & ~(uintptr_t)(width - 1);
        if (physical < first)
            continue;
        uintptr_t page = (physical - first) / 4096, offset = physical & 4095;
        if (page >= pages || map[page] == NULL || offset + width > 4096)
            continue;
        if (physical >= CONTROL_PAGE && physical < CONTROL_PAGE + 8)
            continue;                            // the exit-status register would end the run
        uint64_t value = state * 0x2545f4914f6cdd1dULL;
        if (sigsetjmp(lv_back, 1) != 0) {
            faults++;
            continue;
        }
        volatile unsigned char *p = map[page] + offset;
        int write = (state >> 40) & 1;
        switch (width) {
        case 1: if (write) *p = (uint8_t)value; else (void)*p; break;
        case 2: if (write) *(volatile uint16_t *)p = (uint16_t)value; else (void)*(volatile uint16_t *)p; break;
        case 4: if (write) *(volatile uint32_t *)p = (uint32_t)value; else (void)*(volatile uint32_t *)p; break;
        default: if (write) *(volatile uint64_t *)p = value; else (void)*(volatile uint64_t *)p; break;
        }
        done++;
    }
    lv_say("lv-hostile mmio: %lu access(es) to 0x%lx+0x%lx (%lu of %lu page(s) mapped), %lu fault(s)\n", done,
           (unsigned long)base, (unsigned long)length, mapped, (unsigned long)pages, faults);
    return 0;
}

static unsigned long lv_number(const char *text)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 0);
    if (errno != 0 || end == text || *end != '\0')
        lv_fail("parsing a number");
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        lv_fail("usage: lv-hostile forge|lstar|rostack|cow|mmio ...");
    lv_handle_faults();
    const char *mode = argv[1];
    if (strcmp(mode, "forge") == 0 && (argc == 4 || argc == 5))
        return lv_forge(lv_number(argv[2]), lv_number(argv[3]), argc == 5 ? lv_number(argv[4]) : 1);
    if (strcmp(mode, "lstar") == 0)
        return lv_lstar();
    if (strcmp(mode, "rostack") == 0)
        return lv_stack_in_file("rostack", PROT_READ, MAP_SHARED);
    if (strcmp(mode, "cow") == 0)
        return lv_stack_in_file("cow", PROT_READ | PROT_WRITE, MAP_PRIVATE);
    if (strcmp(mode, "mmio") == 0 && argc == 5)
        return lv_mmio(lv_number(argv[2]), lv_number(argv[3]), lv_number(argv[4]));
    lv_fail("usage: lv-hostile forge|lstar|rostack|cow|mmio ...");
    return 2;
}
