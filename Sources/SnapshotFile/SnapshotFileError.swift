import GuestMemory

/// Why a snapshot file cannot be written or used. A snapshot is untrusted input: every truncated,
/// corrupt or foreign file ends in one of these, never in a trap or a hang.
public enum SnapshotFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case io(path: String, operation: String, errno: Int32)
    case notASnapshot(path: String)
    /// The file's format version is not the one this build reads.
    case unsupportedVersion(file: UInt32, supported: UInt32)
    case truncated(path: String, needed: UInt64, available: UInt64)
    case corrupt(path: String, reason: String)
    /// The snapshot was made for something else: `field` (kernel, initramfs, monitor format
    /// version) is `snapshot` in the file and `expected` here.
    case mismatch(field: String, snapshot: String, expected: String)
    case memory(GuestMemoryFileError)
    /// The writer was given contents no reader would accept (a layout that is not the RAM's, an
    /// over-long digest, no vCPUs, a dilation that is not a positive number); nothing was written.
    case invalidContents(String)

    public var description: String {
        switch self {
        case .io(let path, let operation, let e): return "snapshot \(path): \(operation) failed (errno \(e))"
        case .notASnapshot(let path): return "\(path) is not a LeakVisor snapshot (bad magic)"
        case .unsupportedVersion(let file, let supported):
            return "snapshot format version \(file) is not supported (this build reads version \(supported))"
        case .truncated(let path, let needed, let available):
            return "snapshot \(path) is truncated: \(needed) bytes needed, \(available) present"
        case .corrupt(let path, let reason): return "snapshot \(path) is corrupt: \(reason)"
        case .mismatch(let field, let snapshot, let expected):
            return "snapshot was made for another \(field): the snapshot has \(snapshot), this run has \(expected)"
        case .memory(let e): return "snapshot RAM: \(e)"
        case .invalidContents(let why): return "cannot write this snapshot: \(why)"
        }
    }
}
