/// Bounds-checked little-endian reads from a byte array; every out-of-range read throws.
struct BTFBytes: Sendable {
    let bytes: [UInt8]

    var count: Int { bytes.count }

    func u8(at offset: Int) throws(BTFError) -> UInt8 {
        guard offset >= 0, offset < bytes.count else { throw .readOutOfBounds(offset: offset, length: 1) }
        return bytes[offset]
    }

    func u16(at offset: Int) throws(BTFError) -> UInt16 {
        guard offset >= 0, offset <= bytes.count - 2 else { throw .readOutOfBounds(offset: offset, length: 2) }
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    func u32(at offset: Int) throws(BTFError) -> UInt32 {
        guard offset >= 0, offset <= bytes.count - 4 else { throw .readOutOfBounds(offset: offset, length: 4) }
        return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8
            | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }

    /// The NUL-terminated string at `offset` (invalid UTF-8 is repaired, never trapped on).
    func cString(at offset: Int) throws(BTFError) -> String {
        guard offset >= 0, offset < bytes.count else { throw .readOutOfBounds(offset: offset, length: 1) }
        guard let end = bytes[offset...].firstIndex(of: 0) else {
            throw .readOutOfBounds(offset: offset, length: bytes.count - offset + 1)
        }
        return String(decoding: bytes[offset..<end], as: UTF8.self)
    }
}
