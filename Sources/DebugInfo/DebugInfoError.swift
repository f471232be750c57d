/// Why an ELF file, symbol table, module or unwind could not be used.
public enum DebugInfoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The host file could not be opened (`errno` from `open`).
    case cannotOpen(path: String, errno: Int32)
    /// The host path is a directory, device or another non-regular file.
    case notRegularFile(path: String)
    /// The file is larger than the reader accepts.
    case fileTooLarge(path: String, size: UInt64, limit: UInt64)
    /// The file does not start with an ELF header (empty, text, another format).
    case notELF(path: String)
    /// The file is ELF but its headers are truncated or inconsistent.
    case malformedELF(path: String, reason: String)
    /// A section exists but its contents cannot be read (truncated, bad compression).
    case sectionUnreadable(path: String, section: String, reason: String)
    /// `.symtab` / `.dynsym` exists but cannot be decoded.
    case symbolTableUnreadable(path: String, reason: String)
    /// libdwfl refused to report a module (unreadable file, overlapping range, bad ELF).
    case moduleRejected(name: String, path: String, reason: String)
    /// An elfutils call failed for a reason not tied to one file.
    case libraryFailure(operation: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let code): "cannot open '\(path)': \(systemErrorText(code))"
        case .notRegularFile(let path): "'\(path)' is not a regular file"
        case .fileTooLarge(let path, let size, let limit):
            "'\(path)' is \(size) bytes, more than the \(limit) bytes accepted"
        case .notELF(let path): "'\(path)' is not an ELF file"
        case .malformedELF(let path, let reason): "malformed ELF file '\(path)': \(reason)"
        case .sectionUnreadable(let path, let section, let reason):
            "cannot read section \(section) of '\(path)': \(reason)"
        case .symbolTableUnreadable(let path, let reason): "cannot read the symbol table of '\(path)': \(reason)"
        case .moduleRejected(let name, let path, let reason): "cannot add module \(name) ('\(path)'): \(reason)"
        case .libraryFailure(let operation, let reason): "elfutils \(operation) failed: \(reason)"
        }
    }
}
