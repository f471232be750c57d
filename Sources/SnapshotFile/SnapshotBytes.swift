/// Little-endian writer for the snapshot's header and metadata.
struct SnapshotByteSink {
    private(set) var bytes: [UInt8] = []

    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func raw(_ b: [UInt8]) { bytes += b }
    /// A u32 length, then the bytes.
    mutating func counted(_ b: [UInt8]) {
        u32(UInt32(truncatingIfNeeded: b.count))
        raw(b)
    }
    mutating func section(_ tag: UInt32, _ payload: [UInt8]) {
        u32(tag)
        u32(UInt32(truncatingIfNeeded: payload.count))
        raw(payload)
    }
}

/// Bounds-checked little-endian reader over untrusted bytes; a short read is `nil`, which the
/// caller turns into a `SnapshotFileError.corrupt` naming the place.
struct SnapshotByteCursor {
    let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { offset >= bytes.count }

    mutating func take(_ count: Int) -> [UInt8]? {
        guard count >= 0, count <= bytes.count - offset else { return nil }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    mutating func u32() -> UInt32? { take(4).map { $0.reversed().reduce(0) { ($0 << 8) | UInt32($1) } } }
    mutating func u64() -> UInt64? { take(8).map { $0.reversed().reduce(0) { ($0 << 8) | UInt64($1) } } }

    /// A u32 length (at most `limit`), then that many bytes.
    mutating func counted(limit: Int) -> [UInt8]? {
        guard let n = u32(), n <= limit else { return nil }
        return take(Int(n))
    }
}

/// CRC-32 (IEEE 802.3, the zlib one): guards the header and metadata against corruption.
enum SnapshotCRC32 {
    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
