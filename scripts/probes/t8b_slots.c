/* Which kernel-half PGD slots can the VMM give to user code on this host? For each slot a U path to
 * one monitor page; CPL3 reads and writes it. */
#include "vmm.h"
static struct vm V;
#define MON_GPA 0x100000000ull
#define T(n) (0x500000ull + (n) * 0x1000)
static uint64_t *tbl(uint64_t gpa) { return (uint64_t *)(V.mem + gpa); }
int main(void)
{
	int slots[] = {256, 264, 272, 300, 400, 465, 466, 467, 468, 490, 500, 503, 504, 505, 507, 508, 509, 510, 511};
	for (unsigned i = 0; i < sizeof slots / sizeof *slots; i++) {
		vm_std(&V, 64 << 20, 0);
		uint8_t *mon = mmap(0, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		struct kvm_userspace_memory_region r = { .slot = 1, .guest_phys_addr = MON_GPA, .memory_size = 0x1000, .userspace_addr = (uint64_t)mon };
		CHK(ioctl(V.vm, KVM_SET_USER_MEMORY_REGION, &r));
		int s = slots[i];
		uint64_t *pml4 = tbl(PML4_GPA);
		uint64_t va = 0xffff000000000000ull | ((uint64_t)s << 39);
		if (s == 511) { pml4[511] |= 4; tbl(PDPT_HI)[0] = T(1) | 7; }
		else { pml4[s] = T(0) | 7; tbl(T(0))[0] = T(1) | 7; }
		tbl(T(1))[0] = T(2) | 7; tbl(T(2))[0] = MON_GPA | 7;
		start_user(&V, SYM_u_rw, 0x202);
		struct kvm_regs g = get_regs(&V); g.r8 = va + 8; put_regs(&V, &g);
		int rr = vm_run(&V);
		if (is_done(&V, rr)) printf("slot %d (%llx): ok, monitor sees %llu\n", s, (unsigned long long)va, *(unsigned long long *)(mon + 8));
		else if (is_exc_report(&V, rr)) { struct kvm_regs q = get_regs(&V); printf("slot %d (%llx): #%llu err=%llx\n", s, (unsigned long long)va, q.rax, q.rbx); }
		else print_exit(&V, rr, "other: ");
		vm_free(&V);
	}
	return 0;
}
