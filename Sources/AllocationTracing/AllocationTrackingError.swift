import DebugInfo

/// Why allocator sites could not be found or a displaced instruction could not be executed.
public enum AllocationTrackingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The ELF file could not be opened or read.
    case unreadableFile(DebugInfoError)
    /// The file is ELF but not 64-bit x86-64 (`e_machine` 62).
    case unsupportedMachine(path: String, machine: UInt16, elfClass: ELFClass)
    /// Guest memory returned fewer bytes than the instruction's operand needs.
    case shortMemoryRead(address: UInt64, requested: Int, received: Int)

    public var description: String {
        switch self {
        case .unreadableFile(let error): "\(error)"
        case .unsupportedMachine(let path, let machine, let elfClass):
            "'\(path)' is not an x86-64 ELF file (e_machine \(machine), \(elfClass == .elf64 ? "64" : "32")-bit)"
        case .shortMemoryRead(let address, let requested, let received):
            "read of \(requested) bytes at 0x\(String(address, radix: 16)) returned \(received)"
        }
    }
}
