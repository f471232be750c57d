import GuestInterface
import GuestMemory
import KVM

/// kvm_pvm without VMX: guest CPL0 code runs in KVM's instruction emulator, which cannot execute
/// several instruction families, and `syscall` from CPL3 is left half done (see docs/pvm-notes.md).
public struct PVMHostPolicy: HostPolicy {
    public var name: String { "kvm_pvm (guest kernel emulated)" }

    /// X86_FEATURE_* bit numbers (word*32+bit, Linux 6.1 cpufeatures.h) that the kernel must not use
    /// because the CPL0 emulator fails on them; KVM_SET_CPUID2 cannot hide these on this host.
    /// popcnt, movbe, aes, pclmulqdq, ssse3, sse4_1, sse4_2, avx, fma, f16c, bmi1, bmi2, avx2, invpcid,
    /// adx, smap, clwb, sha_ni, gfni, vaes, rdpid.
    public static let clearedFeatureBits = [151, 150, 153, 129, 137, 147, 148, 156, 140, 157,
                                            291, 296, 293, 298, 307, 308, 312, 317, 520, 521, 534]

    /// KVM_FEATURE_ASYNC_PF (4), PV_UNHALT (7), PV_SEND_IPI (11), PV_SCHED_YIELD (13), ASYNC_PF_INT (14).
    static let hiddenParavirtualFeatures: UInt32 = 0x10 | 0x80 | 0x800 | 0x2000 | 0x4000

    /// A vCPU stopped in user mode restores wrongly here (kvm_pvm tracks its user/supervisor mode
    /// and the other mode's CR3 and stack outside the state ioctls): snapshots wait for kernel mode.
    public var userModeStateSavable: Bool { false }

    /// How much slower guest time runs than host time (see `kernelArguments`).
    public let timeDilation: UInt32

    public init(timeDilation: UInt32 = 10) {
        self.timeDilation = max(1, timeDilation)
    }

    /// Initcalls that only prepare tracing metadata and cost minutes in the emulator:
    /// trace_eval_init rewrites every trace event's format string under event_mutex;
    /// ftrace_check_for_weak_functions looks up a kallsyms name for each of ~38,000 ftrace sites.
    public static let skippedInitcalls = ["trace_eval_init", "ftrace_check_for_weak_functions"]

    public func kernelArguments(tscKHz: UInt32) -> [String] {
        var words = ["noxsave", "nofsgsbase", "tsx=off", "nopcid", "mitigations=off", "nopti",
                     "clearcpuid=" + Self.clearedFeatureBits.map(String.init).joined(separator: ","),
                     "initcall_blacklist=" + Self.skippedInitcalls.joined(separator: ",")]
        // Time dilation: each timer tick costs milliseconds of emulated kernel code, so at the
        // kernel's HZ the guest would spend most of its time in the tick. Telling it the TSC runs
        // `timeDilation` times faster (and using the TSC, not kvm-clock, as its clock and the
        // TSC-deadline LAPIC timer for ticks) makes guest time, and its ticks, run that much slower.
        if timeDilation > 1, tscKHz > 0 {
            words += ["no-kvmclock", "tsc_early_khz=\(UInt64(tscKHz) * UInt64(timeDilation))"]
        }
        return words
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

    public func makeAssistant(memory: GuestMemory, trapHandlers: TrapHandlerSlot) -> VCPUAssistant {
        VCPUAssistant(memory: memory, fixups: EmulatorFixups(), trapHandlers: trapHandlers)
    }
}
