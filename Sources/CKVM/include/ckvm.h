// Thin C shim for Swift: linux/kvm.h ioctl numbers as constants and non-variadic ioctl/mmap wrappers.
// No logic lives here. Every wrapper returns -errno on failure.
#ifndef CKVM_H
#define CKVM_H
#include <linux/kvm.h>
#include <stdint.h>
#include <stddef.h>

static const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
static const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long CKVM_GET_DIRTY_LOG = KVM_GET_DIRTY_LOG;
static const unsigned long CKVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
static const unsigned long CKVM_CREATE_PIT2 = KVM_CREATE_PIT2;
static const unsigned long CKVM_IRQ_LINE = KVM_IRQ_LINE;
static const unsigned long CKVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long CKVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
static const unsigned long CKVM_RUN = KVM_RUN;
static const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
static const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
static const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long CKVM_GET_MSRS = KVM_GET_MSRS;
static const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long CKVM_GET_FPU = KVM_GET_FPU;
static const unsigned long CKVM_SET_FPU = KVM_SET_FPU;
static const unsigned long CKVM_GET_LAPIC = KVM_GET_LAPIC;
static const unsigned long CKVM_SET_LAPIC = KVM_SET_LAPIC;
static const unsigned long CKVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
static const unsigned long CKVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
static const unsigned long CKVM_SET_GUEST_DEBUG = KVM_SET_GUEST_DEBUG;
static const unsigned long CKVM_GET_MP_STATE = KVM_GET_MP_STATE;
static const unsigned long CKVM_ENABLE_CAP = KVM_ENABLE_CAP;
static const unsigned long CKVM_GET_TSC_KHZ = KVM_GET_TSC_KHZ;

static const int CKVM_CAP_IRQCHIP = KVM_CAP_IRQCHIP;
static const int CKVM_CAP_USER_MEMORY = KVM_CAP_USER_MEMORY;
static const int CKVM_CAP_EXT_CPUID = KVM_CAP_EXT_CPUID;
static const int CKVM_CAP_PIT2 = KVM_CAP_PIT2;
static const int CKVM_CAP_IMMEDIATE_EXIT = KVM_CAP_IMMEDIATE_EXIT;
static const int CKVM_CAP_SET_GUEST_DEBUG = KVM_CAP_SET_GUEST_DEBUG;
static const int CKVM_CAP_NR_VCPUS = KVM_CAP_NR_VCPUS;
static const int CKVM_CAP_MAX_VCPUS = KVM_CAP_MAX_VCPUS;

static const uint32_t CKVM_MEM_LOG_DIRTY_PAGES = KVM_MEM_LOG_DIRTY_PAGES;
static const uint32_t CKVM_GUESTDBG_ENABLE = KVM_GUESTDBG_ENABLE;
static const uint32_t CKVM_GUESTDBG_SINGLESTEP = KVM_GUESTDBG_SINGLESTEP;
static const uint32_t CKVM_GUESTDBG_USE_SW_BP = KVM_GUESTDBG_USE_SW_BP;
static const uint32_t CKVM_GUESTDBG_USE_HW_BP = KVM_GUESTDBG_USE_HW_BP;
static const uint32_t CKVM_VCPUEVENT_VALID_NMI_PENDING = KVM_VCPUEVENT_VALID_NMI_PENDING;

/// Largest CPUID table we ask KVM for.
#define CKVM_MAX_CPUID_ENTRIES 256
struct ckvm_cpuid {  /* same layout as struct kvm_cpuid2 with a fixed array */
    uint32_t nent;
    uint32_t padding;
    struct kvm_cpuid_entry2 entries[CKVM_MAX_CPUID_ENTRIES];
};

/// One MSR in a KVM_GET/SET_MSRS call.
struct ckvm_msr_one {  /* same layout as struct kvm_msrs with one entry */
    uint32_t nmsrs;
    uint32_t pad;
    struct kvm_msr_entry entry;
};

int ckvm_open_dev(const char *path);
int ckvm_ioctl_ptr(int fd, unsigned long request, void *arg);
int ckvm_ioctl_val(int fd, unsigned long request, unsigned long arg);
void *ckvm_mmap_shared(int fd, size_t length);
void *ckvm_mmap_anonymous(size_t length);
int ckvm_munmap(void *address, size_t length);
int ckvm_close(int fd);

/// Accessors for kvm_run's anonymous union (Swift sees it awkwardly).
static inline struct kvm_debug_exit_arch *ckvm_run_debug(struct kvm_run *run) { return &run->debug.arch; }
static inline uint8_t *ckvm_run_io_data(struct kvm_run *run) { return (uint8_t *)run + run->io.data_offset; }

/* State capture and restore (snapshots). Structures with flexible arrays (kvm_msr_list,
   kvm_msrs, KVM_GET_XSAVE2's buffer) are built as raw buffers by the Swift side. */
static const unsigned long CKVM_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;
static const unsigned long CKVM_GET_CPUID2 = KVM_GET_CPUID2;
static const unsigned long CKVM_GET_XSAVE = KVM_GET_XSAVE;
static const unsigned long CKVM_GET_XSAVE2 = KVM_GET_XSAVE2;
static const unsigned long CKVM_SET_XSAVE = KVM_SET_XSAVE;
static const unsigned long CKVM_GET_XCRS = KVM_GET_XCRS;
static const unsigned long CKVM_SET_XCRS = KVM_SET_XCRS;
static const unsigned long CKVM_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
static const unsigned long CKVM_SET_DEBUGREGS = KVM_SET_DEBUGREGS;
static const unsigned long CKVM_SET_MP_STATE = KVM_SET_MP_STATE;
static const unsigned long CKVM_SET_TSC_KHZ = KVM_SET_TSC_KHZ;
static const unsigned long CKVM_GET_IRQCHIP = KVM_GET_IRQCHIP;
static const unsigned long CKVM_SET_IRQCHIP = KVM_SET_IRQCHIP;
static const unsigned long CKVM_GET_PIT2 = KVM_GET_PIT2;
static const unsigned long CKVM_SET_PIT2 = KVM_SET_PIT2;
static const unsigned long CKVM_GET_CLOCK = KVM_GET_CLOCK;
static const unsigned long CKVM_SET_CLOCK = KVM_SET_CLOCK;
static const int CKVM_CAP_XSAVE = KVM_CAP_XSAVE;
static const int CKVM_CAP_XSAVE2 = KVM_CAP_XSAVE2;
static const int CKVM_CAP_XCRS = KVM_CAP_XCRS;
static const int CKVM_CAP_DEBUGREGS = KVM_CAP_DEBUGREGS;
static const int CKVM_CAP_VCPU_EVENTS = KVM_CAP_VCPU_EVENTS;
static const int CKVM_CAP_ADJUST_CLOCK = KVM_CAP_ADJUST_CLOCK;
static const int CKVM_CAP_TSC_CONTROL = KVM_CAP_TSC_CONTROL;
static const int CKVM_CAP_PIT_STATE2 = KVM_CAP_PIT_STATE2;
static const uint32_t CKVM_IRQCHIP_PIC_MASTER = KVM_IRQCHIP_PIC_MASTER;
static const uint32_t CKVM_IRQCHIP_PIC_SLAVE = KVM_IRQCHIP_PIC_SLAVE;
static const uint32_t CKVM_IRQCHIP_IOAPIC = KVM_IRQCHIP_IOAPIC;
#endif
