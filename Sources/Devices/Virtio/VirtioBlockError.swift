#if canImport(Glibc)
import Glibc
#endif

/// Why a disk image could not be attached.
public enum VirtioBlockError: Error, Equatable, Sendable, CustomStringConvertible {
    case open(path: String, errno: Int32)
    case notAFile(path: String)

    public var description: String {
        switch self {
        case .open(let path, let e): return "cannot open disk image \(path): \(String(cString: strerror(e)))"
        case .notAFile(let path): return "disk image \(path) is not a regular file or block device"
        }
    }
}
