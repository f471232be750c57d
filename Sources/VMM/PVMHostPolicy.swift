import GuestMemory
import KVM

/// kvm_pvm without VMX: guest CPL0 code runs in KVM's instruction emulator, which cannot execute
/// several instruction families, and `syscall` from CPL3 is left half done (see docs/pvm-notes.md).
public struct PVMHostPolicy: HostPolicy {
    public init() {}
    public var name: String { "kvm_pvm (guest kernel emulated)" }

    /// X86_FEATURE_* bit numbers (word*32+bit, Linux 6.1 cpufeatures.h) that the kernel must not use
    /// because the CPL0 emulator fails on them; KVM_SET_CPUID2 cannot hide these on this host.
    /// popcnt, movbe, aes, pclmulqdq, ssse3, sse4_1, sse4_2, avx, fma, f16c, bmi1, bmi2, avx2, invpcid,
    /// adx, smap, clwb, sha_ni, gfni, vaes, rdpid.
    public static let clearedFeatureBits = [151, 150, 153, 129, 137, 147, 148, 156, 140, 157,
                                            291, 296, 293, 298, 307, 308, 312, 317, 520, 521, 534]

    /// KVM_FEATURE_ASYNC_PF (4), PV_UNHALT (7), PV_SEND_IPI (11), PV_SCHED_YIELD (13), ASYNC_PF_INT (14).
    static let hiddenParavirtualFeatures: UInt32 = 0x10 | 0x80 | 0x800 | 0x2000 | 0x4000

    public var kernelArguments: [String] {
        ["noxsave", "nofsgsbase", "tsx=off", "nopcid", "mitigations=off", "nopti",
         "clearcpuid=" + Self.clearedFeatureBits.map(String.init).joined(separator: ",")]
    }

    public func cpuid(supported: [CPUIDEntry], vcpu index: Int, of count: Int) -> [CPUIDEntry] {
        var entries = supported
        for i in entries.indices {
            switch entries[i].function {
            case 1:
                entries[i].ecx &= ~(1 << 13)          // CX16: cmpxchg16b is not emulated
            case 0x8000_0001:
                entries[i].edx &= ~(1 << 27)          // RDTSCP is not emulated
            case 0x4000_0001:
                // PV features whose hypercalls hang here (vmcall never returns) or need host help:
                // ASYNC_PF, PV_UNHALT, PV_SEND_IPI, PV_SCHED_YIELD, ASYNC_PF_INT.
                entries[i].eax &= ~Self.hiddenParavirtualFeatures
            default: break
            }
        }
        CPUTopology.apply(to: &entries, vcpu: index, of: count)
        return entries
    }

    public func makeAssistant(memory: GuestMemory) -> VCPUAssistant {
        VCPUAssistant(memory: memory, completesSyscalls: true)
    }
}
