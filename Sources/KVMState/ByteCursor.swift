/// Little-endian writer for the KVM state encoding.
struct ByteSink {
    private(set) var bytes: [UInt8] = []

    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func raw(_ b: [UInt8]) { bytes += b }

    /// A section: tag, byte length, payload.
    mutating func section(_ tag: UInt32, _ payload: [UInt8]) {
        u32(tag)
        u32(UInt32(payload.count))
        raw(payload)
    }
}

/// Bounds-checked little-endian reader over untrusted bytes: every read either succeeds or
/// throws `KVMStateFormatError.truncated`.
struct ByteCursor {
    let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }
    var atEnd: Bool { offset >= bytes.count }

    mutating func take(_ count: Int) throws(KVMStateFormatError) -> [UInt8] {
        guard count >= 0, count <= remaining else {
            throw .truncated(offset: offset, needed: count, available: remaining)
        }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    mutating func u32() throws(KVMStateFormatError) -> UInt32 {
        let b = try take(4)
        return b.reversed().reduce(0) { ($0 << 8) | UInt32($1) }
    }

    mutating func u64() throws(KVMStateFormatError) -> UInt64 {
        let b = try take(8)
        return b.reversed().reduce(0) { ($0 << 8) | UInt64($1) }
    }

    /// Reads sections (tag, length, payload) to the end; a tag may appear once.
    mutating func sections(in place: String, known: Set<UInt32>,
                           repeatable: Set<UInt32> = []) throws(KVMStateFormatError) -> [(tag: UInt32, payload: [UInt8])] {
        var seen = Set<UInt32>()
        var out: [(tag: UInt32, payload: [UInt8])] = []
        while !atEnd {
            let tag = try u32()
            let length = try u32()
            guard known.contains(tag) else { throw .unknownSection(tag: tag, in: place) }
            if !repeatable.contains(tag), !seen.insert(tag).inserted { throw .duplicateSection(tag: tag, in: place) }
            out.append((tag, try take(Int(length))))
        }
        return out
    }
}

extension Array where Element == UInt8 {
    /// A little-endian u32 at `offset`; the caller has checked the length.
    func littleEndianU32(at offset: Int) -> UInt32 {
        self[offset..<(offset + 4)].reversed().reduce(0) { ($0 << 8) | UInt32($1) }
    }
}
