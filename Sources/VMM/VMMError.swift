import Boot
import Devices
import GuestMemory
import KVM

/// Top-level failures of building or running a machine, each wrapping its layer's error.
public enum VMMError: Error, CustomStringConvertible, Sendable {
    case kvm(KVMError)
    case memory(GuestMemoryError)
    case boot(BootError)
    case bus(BusError)
    case configuration(String)
    case file(path: String, reason: String)
    /// The guest did something the monitor cannot handle; the report says what and where.
    case unhandledGuestEvent(String)
    /// Not every vCPU left the guest within the time allowed for a pause.
    case pauseTimedOut(seconds: Double)
    /// Parked vCPUs whose state could not be read for a pause.
    case vcpuStateUnreadable([VCPUStateError])
    /// A disk image could not be attached.
    case disk(VirtioBlockError)
    /// A snapshot could not be taken or restored (what and why).
    case snapshot(String)
    /// The exit round-trip probe could not set up its tiny VM.
    indirect case exitProbe(VMMError)

    /// Whether the failure is about a snapshot's contents (its KVM, device or monitor state), as
    /// opposed to the host (KVM device, memory, a disk) that a cold boot would meet too.
    public var concernsSnapshot: Bool {
        if case .snapshot = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .kvm(let e): return "KVM: \(e)"
        case .memory(let e): return "\(e)"
        case .boot(let e): return "\(e)"
        case .bus(let e): return "device bus: \(e)"
        case .configuration(let s): return s
        case .file(let p, let r): return "\(p): \(r)"
        case .unhandledGuestEvent(let s): return s
        case .pauseTimedOut(let s): return "the guest's vCPUs did not all stop within \(s) s"
        case .vcpuStateUnreadable(let errors): return "could not read vCPU state: " + errors.map(\.description).joined(separator: "; ")
        case .disk(let e): return "\(e)"
        case .snapshot(let s): return "snapshot: \(s)"
        case .exitProbe(let e): return "exit probe: \(e)"
        }
    }
}

/// A parked vCPU whose registers could not be read.
public struct VCPUStateError: Error, CustomStringConvertible, Sendable {
    public let vcpu: Int
    public let error: KVMError
    public var description: String { "vCPU \(vcpu): \(error)" }
}
