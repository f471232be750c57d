import BinaryCoding

/// The shared `LittleEndianReader` for the KVM state encoding: every read either succeeds or
/// throws `KVMStateFormatError.truncated`.
struct ByteCursor {
    private var reader: LittleEndianReader

    init(_ bytes: [UInt8]) { reader = LittleEndianReader(bytes) }

    var remaining: Int { reader.remaining }
    var atEnd: Bool { reader.atEnd }

    mutating func take(_ count: Int) throws(KVMStateFormatError) -> [UInt8] {
        guard let b = reader.take(count) else { throw truncated(needing: count) }
        return b
    }

    mutating func u32() throws(KVMStateFormatError) -> UInt32 {
        guard let v = reader.u32() else { throw truncated(needing: 4) }
        return v
    }

    mutating func u64() throws(KVMStateFormatError) -> UInt64 {
        guard let v = reader.u64() else { throw truncated(needing: 8) }
        return v
    }

    private func truncated(needing count: Int) -> KVMStateFormatError {
        .truncated(offset: reader.offset, needed: count, available: reader.remaining)
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
