/// Why a device could not be registered on a bus.
public enum BusError: Error, Equatable, CustomStringConvertible {
    /// The requested range intersects a range already registered.
    case overlap(base: UInt64, length: UInt64)
    /// The requested range has zero length.
    case emptyRange
    /// The requested range extends past the end of the bus's address space.
    case overflow(base: UInt64, length: UInt64)

    public var description: String {
        switch self {
        case .overlap(let base, let length):
            return "range 0x\(String(base, radix: 16)) (+0x\(String(length, radix: 16))) overlaps a registered device"
        case .emptyRange:
            return "zero-length range"
        case .overflow(let base, let length):
            return "range 0x\(String(base, radix: 16)) (+0x\(String(length, radix: 16))) overflows the address space"
        }
    }
}
