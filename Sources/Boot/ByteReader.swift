/// Bounds-checked little-endian reads from an untrusted byte buffer (kernel files, guest data).
struct ByteReader {
    let bytes: [UInt8]

    func u8(_ offset: Int) -> UInt8? {
        offset >= 0 && offset < bytes.count ? bytes[offset] : nil
    }

    func integer<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T? {
        let n = MemoryLayout<T>.size
        guard offset >= 0, offset <= bytes.count - n else { return nil }
        var v: T = 0
        for i in 0..<n { v |= T(bytes[offset + i]) << (8 * i) }
        return v
    }

    func slice(_ offset: Int, _ length: Int) -> ArraySlice<UInt8>? {
        guard offset >= 0, length >= 0, offset <= bytes.count, length <= bytes.count - offset else { return nil }
        return bytes[offset..<offset + length]
    }
}

extension Array where Element == UInt8 {
    /// Writes `value` little-endian at `offset` (the caller sized the array).
    mutating func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        for i in 0..<MemoryLayout<T>.size { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }
}
