import GuestMemory
import Introspection
import X86

/// Why tracking could not start.
public enum TrackerError: Error, CustomStringConvertible {
    /// The kernel function does not start with the 5-byte ftrace nop (its first bytes are given).
    case kernelHook(String, firstBytes: [UInt8])
    /// The guest kernel could not be read (its tasks, a symbol).
    case kernel(IntrospectionError)
    /// A kernel hook's address has no translation in the kernel's page tables.
    case translation(TranslationError)
    /// Guest memory refused a read or write of a hook.
    case memory(GuestMemoryError)
    /// Arming is in progress on another vCPU.
    case arming
    /// Tracking was stopped and every breakpoint removed.
    case disarmed

    public var description: String {
        switch self {
        case .kernelHook(let function, let bytes):
            let text = bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: " ")
            return "cannot hook the guest kernel's \(function): it starts with \(text), not the 5-byte ftrace nop (is ftrace tracing it?)"
        case .kernel(let error): return "\(error)"
        case .translation(let error): return "\(error)"
        case .memory(let error): return "\(error)"
        case .arming: return "arming is in progress"
        case .disarmed: return "tracking was stopped"
        }
    }
}
