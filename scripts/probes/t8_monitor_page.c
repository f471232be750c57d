/* Monitor-owned pages mapped into guest user space (issue 19, item 1): can CPL3 code reach a page
 * that the VMM maps by writing the guest's page tables itself, with no guest instruction run
 * (no invlpg, no CR3 write)? In the user half after a not-present fault there, in the kernel
 * half (the 0xffff800000000000 guard hole, U bit on the path), and in the top 2 MiB hole
 * (reachable with `push imm32; ret`). What does a call into it cost, and how is it taken away:
 * clearing the PTE, and deleting the memory slot behind it. */
#include "vmm.h"
static struct vm V;

#define MON_GPA   0x100000000ull   /* slot 1: outside guest RAM */
#define MON_SIZE  0x4000ull
#define T(n)      (0x500000ull + (n) * 0x1000)   /* free guest RAM for page tables */
#define VA_U      0x00007ffffffff000ull
#define VA_K      0xffff800000000000ull
#define VA_T      0xffffffffffe00000ull
static uint8_t *mon;

static uint64_t *tbl(uint64_t gpa) { return (uint64_t *)(V.mem + gpa); }

static int run_user(uint64_t rip, uint64_t r8, uint64_t r9, const char *tag, double *us)
{
	start_user(&V, rip, 0x202);
	struct kvm_regs g = get_regs(&V); g.r8 = r8; g.r9 = r9; put_regs(&V, &g);
	uint64_t t0 = now_ns();
	int r = vm_run(&V);
	uint64_t t1 = now_ns();
	if (us) *us = (t1 - t0) / 1000.0;
	if (is_done(&V, r)) { printf("  %s: done (%.1f us)\n", tag, (t1 - t0) / 1000.0); return 0; }
	if (is_exc_report(&V, r)) { printf("  %s: guest exception\n", tag); print_exc(&V); return 1; }
	print_exit(&V, r, "  unexpected exit: "); return 2;
}

static void set_slot(uint64_t size)
{
	struct kvm_userspace_memory_region r = { .slot = 1, .flags = 0, .guest_phys_addr = MON_GPA,
		.memory_size = size, .userspace_addr = (uint64_t)mon };
	CHK(ioctl(V.vm, KVM_SET_USER_MEMORY_REGION, &r));
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	vm_std(&V, 64 << 20, 0);
	mon = mmap(0, MON_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	mon[0x100] = 0xC3;                       /* code page: ret */
	set_slot(MON_SIZE);
	uint64_t *pml4 = tbl(PML4_GPA);
	/* user half: PML4[255] -> T0 -> T1 -> T2 (leaf table, entry 511 empty for now) */
	pml4[255] = T(0) | 7; tbl(T(0))[511] = T(1) | 7; tbl(T(1))[511] = T(2) | 7;
	/* kernel half guard hole */
	pml4[256] = T(3) | 7; tbl(T(3))[0] = T(4) | 7; tbl(T(4))[0] = T(5) | 7;
	tbl(T(5))[0] = MON_GPA | 5; tbl(T(5))[1] = (MON_GPA + 0x1000) | 7;
	/* top 2 MiB: PML4[511] -> PDPT_HI (U added) [511] -> T6 [511] -> T7 [0] */
	pml4[511] |= 4; tbl(PDPT_HI)[511] = T(6) | 7; tbl(T(6))[511] = T(7) | 7; tbl(T(7))[0] = MON_GPA | 5;

	puts("== 1 user half: access before the PTE exists, then the VMM writes it (no flush)");
	run_user(SYM_u_rw, VA_U + 8, 0, "before", 0);
	tbl(T(2))[511] = (MON_GPA + 0x2000) | 7;
	run_user(SYM_u_rw, VA_U + 8, 0, "after", 0);
	printf("  monitor sees %llu, xadd %llu\n", *(unsigned long long *)(mon + 0x2008), *(unsigned long long *)(mon + 0x2010));
	run_user(SYM_u_rw, VA_U + 8, 0, "again", 0);
	printf("  monitor sees %llu, xadd %llu\n", *(unsigned long long *)(mon + 0x2008), *(unsigned long long *)(mon + 0x2010));

	puts("== 2 kernel-half guard hole, U on the path: data page and code page");
	run_user(SYM_u_rw, VA_K + 0x1000, 0, "data rw", 0);
	printf("  monitor sees %llu, xadd %llu\n", *(unsigned long long *)(mon + 0x1000), *(unsigned long long *)(mon + 0x1008));
	double us, base;
	run_user(SYM_u_callloop, SYM_u_localret, n, "call local ret x n", &base);
	if (run_user(SYM_u_callloop, VA_K + 0x100, n, "call monitor page ret x n", &us) == 0)
		printf("  per call: local %.2f ns, monitor page %.2f ns\n", base * 1000 / n, us * 1000 / n);

	puts("== 3 top 2 MiB hole via push imm32; ret");
	if (run_user(SYM_u_pushret_loop, 0, n, "push/ret x n", &us) == 0) printf("  per push/ret round trip: %.2f ns\n", us * 1000 / n);

	puts("== 4 taking it away: clear the data PTE (no flush), then the monitor writes a marker");
	tbl(T(5))[1] = 0;
	run_user(SYM_u_rw, VA_K + 0x1000, 0, "after PTE cleared", 0);
	printf("  monitor sees %llu\n", *(unsigned long long *)(mon + 0x1000));
	puts("== 5 delete slot 1 (PTEs to it still present)");
	set_slot(0);
	run_user(SYM_u_rw, VA_U + 8, 0, "user-half page, slot gone", 0);
	run_user(SYM_u_callloop, VA_K + 0x100, 1, "code page, slot gone", 0);
	puts("== 6 slot back");
	set_slot(MON_SIZE);
	run_user(SYM_u_rw, VA_U + 8, 0, "user-half page, slot back", 0);
	printf("  monitor sees %llu\n", *(unsigned long long *)(mon + 0x2008));
	puts("== 7 user-half PTE cleared by the VMM after use (no flush)");
	tbl(T(2))[511] = 0;
	run_user(SYM_u_rw, VA_U + 8, 0, "after clear", 0);
	printf("  monitor sees %llu\n", *(unsigned long long *)(mon + 0x2008));
	puts("== 8 user-half PTE pointed at another frame by the VMM (no flush)");
	tbl(T(2))[511] = (MON_GPA + 0x3000) | 7;
	run_user(SYM_u_rw, VA_U + 8, 0, "after remap", 0);
	printf("  old frame %llu, new frame %llu\n", *(unsigned long long *)(mon + 0x2008), *(unsigned long long *)(mon + 0x3008));
	return 0;
}
