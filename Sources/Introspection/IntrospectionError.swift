import BTF
import DebugInfo
import X86

/// Why the guest could not be introspected. Guest data is untrusted: inconsistent or looping
/// kernel structures end here, never in a crash or a hang.
public enum IntrospectionError: Error, CustomStringConvertible, Sendable {
    case read(String, AddressSpaceError)
    case missingSymbol(String)
    case layout(BTFError)
    case kernelImage(String)
    /// The kernel image or symbol file at `path` could not be read as ELF or System.map.
    case kernelFile(path: String, DebugInfoError)
    /// The kernel image at `path` holds no usable kallsyms tables.
    case kernelSymbols(path: String, KallsymsError)
    /// libdwfl could not start a session or an unwinder (for guest stacks).
    case libdwfl(DebugInfoError)
    case noSuchProcess(Int32)
    case noUserContext(pid: Int32, why: String)
    case inconsistent(String)

    public var description: String {
        switch self {
        case .read(let what, let error): return "cannot read \(what): \(error)"
        case .missingSymbol(let name): return "the guest kernel has no symbol \(name)"
        case .layout(let error): return "kernel type information: \(error)"
        case .kernelImage(let why): return "kernel image: \(why)"
        case .kernelFile(let path, let error): return "kernel image: \(path): \(error)"
        case .kernelSymbols(let path, let error): return "kernel image: \(path): \(error)"
        case .libdwfl(let error): return "kernel image: libdwfl: \(error)"
        case .noSuchProcess(let pid): return "no process with PID \(pid) in the guest"
        case .noUserContext(let pid, let why): return "no user-space context for PID \(pid): \(why)"
        case .inconsistent(let why): return "guest kernel data is inconsistent: \(why)"
        }
    }
}
