/// Consumes a fuzzer input front to back; reads past the end give zeros, so every input is valid.
struct FuzzInput {
    let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset >= bytes.count }
    var remainingCount: Int { max(0, bytes.count - offset) }

    mutating func integer<T: FixedWidthInteger>(_ type: T.Type = T.self) -> T {
        var value = T.zero
        for i in 0..<MemoryLayout<T>.size {
            let byte = offset < bytes.count ? bytes[offset] : 0
            offset += 1
            value |= T(truncatingIfNeeded: byte) << (8 * i)
        }
        return value
    }

    mutating func u8() -> UInt8 { integer() }
    mutating func u16() -> UInt16 { integer() }
    mutating func u32() -> UInt32 { integer() }
    mutating func u64() -> UInt64 { integer() }

    /// Up to `count` bytes (fewer at the end of the input).
    mutating func take(_ count: Int) -> [UInt8] {
        let start = min(offset, bytes.count)
        let end = min(bytes.count, start + max(0, count))
        offset = end
        return Array(bytes[start..<end])
    }

    /// Everything not consumed yet.
    mutating func rest() -> [UInt8] { take(remainingCount) }
}
