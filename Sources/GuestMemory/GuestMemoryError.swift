/// A guest-physical access that does not lie entirely inside one RAM region.
public enum GuestMemoryError: Error, Equatable, Sendable, CustomStringConvertible {
    case outOfRange(address: GuestPhysicalAddress, length: Int)
    case hostAllocationFailed(bytes: UInt64)
    case invalidLayout(String)

    public var description: String {
        switch self {
        case .outOfRange(let a, let n): return "guest-physical range [\(a), +\(n)) is outside guest RAM"
        case .hostAllocationFailed(let n): return "could not reserve \(n) bytes of host memory for guest RAM"
        case .invalidLayout(let why): return "invalid guest memory layout: \(why)"
        }
    }
}
