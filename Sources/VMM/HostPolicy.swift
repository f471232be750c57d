import GuestInterface
import Foundation
import GuestMemory
import KVM

/// Everything that differs between a host with hardware virtualization (VMX/SVM + EPT) and
/// this project's paravirtual kvm_pvm host lives behind this protocol.
public protocol HostPolicy: Sendable {
    /// Short name for logs and `--help` output.
    var name: String { get }
    /// CPUID for vCPU `index` of `count`, derived from what KVM supports.
    func cpuid(supported: [CPUIDEntry], vcpu index: Int, of count: Int) -> [CPUIDEntry]
    /// Kernel command-line words that keep the guest away from what the host cannot run.
    /// `tscKHz` is KVM's TSC frequency for the guest.
    func kernelArguments(tscKHz: UInt32) -> [String]
    /// Wall-clock seconds per guest second (1 unless the policy slows guest time down).
    var timeDilation: UInt32 { get }
    /// Whether KVM's state ioctls capture a vCPU stopped in guest user mode completely, so that a
    /// snapshot can be taken there (kvm_pvm: no, a snapshot waits for each vCPU to be in the kernel).
    var userModeStateSavable: Bool { get }
    /// A per-vCPU helper that handles host-specific exits and the monitor's own traps; owned by that vCPU's thread.
    func makeAssistant(memory: GuestMemory, trapHandlers: TrapHandlerSlot) -> VCPUAssistant
}

/// Picks the policy for this host: kvm_pvm when its module is loaded, hardware virtualization otherwise.
/// `LEAKVISOR_HOST=pvm|hardware` overrides the detection.
public enum HostDetection {
    public static func detect() -> any HostPolicy {
        switch ProcessInfo.processInfo.environment["LEAKVISOR_HOST"] {
        case "pvm": return pvm()
        case "hardware": return HardwareHostPolicy()
        default:
            return FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm") ? pvm() : HardwareHostPolicy()
        }
    }
}

extension HostDetection {
    /// `LEAKVISOR_TIME_DILATION=N` overrides the PVM policy's guest time dilation (1 turns it off).
    static func pvm() -> PVMHostPolicy {
        let factor = ProcessInfo.processInfo.environment["LEAKVISOR_TIME_DILATION"].flatMap { UInt32($0) } ?? 10
        return PVMHostPolicy(timeDilation: factor)
    }
}

/// Topology leaves common to every host: per-vCPU APIC ids.
enum CPUTopology {
    static func apply(to entries: inout [CPUIDEntry], vcpu index: Int, of count: Int) {
        for i in entries.indices {
            switch entries[i].function {
            case 1:
                entries[i].edx |= 1 << 9  // APIC: the in-kernel local APIC is always there
                entries[i].ebx = (entries[i].ebx & 0x0000_FFFF) | (UInt32(index) << 24) | (UInt32(max(count, 1)) << 16)
                if count > 1 { entries[i].edx |= 1 << 28 }  // HTT: multi-processor topology valid
            case 0xB, 0x1F:
                entries[i].edx = UInt32(index)
            default: break
            }
        }
    }
}

/// Hosts with VMX/SVM: the guest kernel runs natively; KVM's CPUID is taken as it is.
public struct HardwareHostPolicy: HostPolicy {
    public init() {}
    public var name: String { "hardware virtualization (VMX/SVM)" }
    public var timeDilation: UInt32 { 1 }
    public var userModeStateSavable: Bool { true }
    public func cpuid(supported: [CPUIDEntry], vcpu index: Int, of count: Int) -> [CPUIDEntry] {
        var entries = supported
        CPUTopology.apply(to: &entries, vcpu: index, of: count)
        return entries
    }
    public func kernelArguments(tscKHz: UInt32) -> [String] { [] }
    public func makeAssistant(memory: GuestMemory, trapHandlers: TrapHandlerSlot) -> VCPUAssistant {
        VCPUAssistant(memory: memory, fixups: nil, trapHandlers: trapHandlers)
    }
}
