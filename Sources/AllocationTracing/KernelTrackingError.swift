import GuestMemory
import Introspection

/// Why kernel allocation tracking could not start, or part of it could not be armed.
public enum KernelTrackingError: Error, CustomStringConvertible {
    /// The guest kernel could not be read (a symbol, the vCPU state).
    case kernel(IntrospectionError)
    /// The kernel's BTF lacks a structure kernel tracking reads.
    case layout(String)
    /// Kernel memory at `address` has no translation or cannot be read.
    case unreadable(String, UInt64)
    /// The bytes where the monitor would write are not what it expects (given).
    case unexpectedBytes(String, [UInt8])
    /// The change would cross a page boundary.
    case crossesPage(String, UInt64)
    /// The kernel's jump table is missing or implausible.
    case jumpTable(String)
    /// Guest memory refused a read or write.
    case memory(GuestMemoryError)
    /// Arming is in progress, or already done.
    case alreadyArmed
    /// Tracking was stopped and every kernel byte put back.
    case disarmed

    public var description: String {
        switch self {
        case .kernel(let error): return "\(error)"
        case .layout(let why): return "the guest kernel's BTF: \(why)"
        case .unreadable(let what, let address): return "\(what) at 0x\(String(address, radix: 16)) cannot be read"
        case .unexpectedBytes(let what, let bytes):
            let text = bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: " ")
            return "\(what) holds \(text), not what the monitor expects (is the guest tracing it?)"
        case .crossesPage(let what, let address): return "\(what) at 0x\(String(address, radix: 16)) crosses a page"
        case .jumpTable(let why): return "the kernel's jump table: \(why)"
        case .memory(let error): return "\(error)"
        case .alreadyArmed: return "kernel tracking is armed already (or arming)"
        case .disarmed: return "kernel tracking was stopped"
        }
    }
}
