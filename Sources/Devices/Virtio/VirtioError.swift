/// Why a virtqueue cannot be used: the driver broke the ring protocol. The transport answers
/// with DEVICE_NEEDS_RESET and stops the queue.
public enum VirtioError: Error, Equatable, Sendable, CustomStringConvertible {
    case outOfBounds(address: UInt64, count: Int)
    case badDescriptorIndex(UInt16)
    case chainTooLong
    case indirectUnsupported
    case availIndexJump(last: UInt16, now: UInt16)
    case malformedRequest(String)

    public var description: String {
        switch self {
        case .outOfBounds(let a, let n): return "guest range 0x\(String(a, radix: 16)) +\(n) is outside guest RAM"
        case .badDescriptorIndex(let i): return "descriptor index \(i) is past the queue size"
        case .chainTooLong: return "descriptor chain longer than the queue (loop?)"
        case .indirectUnsupported: return "indirect descriptors were not negotiated"
        case .availIndexJump(let last, let now): return "avail index moved from \(last) to \(now), more than the queue size"
        case .malformedRequest(let why): return "malformed request: \(why)"
        }
    }
}
