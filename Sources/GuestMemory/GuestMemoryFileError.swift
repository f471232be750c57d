/// Why guest RAM could not be saved to or mapped from a file (a snapshot's RAM).
public enum GuestMemoryFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The layout is not one guest RAM can have (unaligned, empty, overlapping, overflowing, too many regions).
    case invalidLayout(String)
    /// The file holds fewer bytes than the layout needs from the given offset.
    case fileTooShort(needed: UInt64, available: UInt64)
    case mapFailed(bytes: UInt64, errno: Int32)
    case io(operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .invalidLayout(let why): return "invalid guest RAM layout in file: \(why)"
        case .fileTooShort(let needed, let available):
            return "guest RAM file is too short: \(needed) bytes needed, \(available) present"
        case .mapFailed(let bytes, let e): return "could not map \(bytes) bytes of guest RAM from the file (errno \(e))"
        case .io(let operation, let e): return "guest RAM file: \(operation) failed (errno \(e))"
        }
    }
}
