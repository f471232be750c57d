/// Bounds-checked little-endian reader over untrusted bytes: a read past the end returns nil and
/// consumes nothing, so the caller turns it into its own typed error (with `offset` and
/// `remaining` to say where).
public struct LittleEndianReader: Sendable {
    public let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var remaining: Int { bytes.count - offset }
    public var atEnd: Bool { offset >= bytes.count }

    public mutating func take(_ count: Int) -> [UInt8]? {
        guard count >= 0, count <= remaining else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    public mutating func u32() -> UInt32? { take(4).map { $0.reversed().reduce(0) { ($0 << 8) | UInt32($1) } } }
    public mutating func u64() -> UInt64? { take(8).map { $0.reversed().reduce(0) { ($0 << 8) | UInt64($1) } } }

    /// A u32 length (at most `limit`), then that many bytes.
    public mutating func counted(limit: Int) -> [UInt8]? {
        let start = offset
        guard let n = u32(), n <= limit, let b = take(Int(n)) else {
            offset = start
            return nil
        }
        return b
    }
}
