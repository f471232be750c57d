/// Parsed BTF (BPF Type Format) data, e.g. a kernel's `.BTF` section: kernel struct layouts by name.
///
/// Parsing validates the header, section bounds, every type record's length and every name offset, and
/// indexes type and enumerator names. Type ids referenced by records are checked when followed.
/// Immutable after `init`; all lookups throw `BTFError` rather than trap on hostile data.
public final class BTF: Sendable {
    /// Size of a pointer: BTF does not record it; the guests are x86-64.
    public static let pointerSize = 8
    /// Longest typedef/qualifier/array chain or anonymous-member nesting followed before giving up.
    static let maxDepth = 32

    /// Number of types, not counting void (valid ids are 1...typeCount).
    public let typeCount: Int
    let types: BTFBytes
    let strings: BTFBytes
    /// Offset in `types` of type id i + 1.
    let recordOffsets: [UInt32]
    /// Type name → ids of the types with that name, in id order.
    let typesByName: [String: [BTFTypeID]]
    /// Enumerator name → ids of the ENUM/ENUM64 types that define it.
    let enumsByEnumerator: [String: [BTFTypeID]]

    /// Parses little-endian BTF: the 24-byte header, then the type and string sections it locates.
    public init(data: [UInt8]) throws(BTFError) {
        let header = try BTFHeader(data)
        types = BTFBytes(bytes: Array(data[header.typeStart..<header.typeEnd]))
        strings = BTFBytes(bytes: Array(data[header.stringStart..<header.stringEnd]))
        if strings.count > 0 {
            guard strings.bytes[0] == 0 else { throw .missingEmptyString }
            guard strings.bytes[strings.count - 1] == 0 else { throw .unterminatedStringSection }
        }

        var offsets: [UInt32] = []
        var byName: [String: [BTFTypeID]] = [:]
        var byEnumerator: [String: [BTFTypeID]] = [:]
        var offset = 0
        while offset < types.count {
            let id = BTFTypeID(UInt32(offsets.count + 1))
            let record = try BTFRecord(id: id, offset: offset, in: types)
            guard types.count - offset >= record.totalSize else { throw .truncatedType(id, offset: offset) }
            let name = try Self.string(record.nameOffset, of: id, in: strings)
            if !name.isEmpty { byName[name, default: []].append(id) }
            if let entrySize = record.kind.namedEntrySize {
                for index in 0..<record.vlen {
                    let entryName = try types.u32(at: record.dataOffset + entrySize * index)
                    guard record.kind.isEnumeration else {
                        try Self.check(entryName, of: id, in: strings)
                        continue
                    }
                    let text = try Self.string(entryName, of: id, in: strings)
                    if !text.isEmpty, byEnumerator[text]?.last != id { byEnumerator[text, default: []].append(id) }
                }
            }
            offsets.append(UInt32(offset))
            offset += record.totalSize
        }
        recordOffsets = offsets
        typeCount = offsets.count
        typesByName = byName
        enumsByEnumerator = byEnumerator
    }

    /// Checks that a name offset lies inside the string section (0 is the empty name even without one).
    private static func check(_ offset: UInt32, of id: BTFTypeID, in strings: BTFBytes) throws(BTFError) {
        guard Int(offset) < strings.count || offset == 0 else { throw .stringOffsetOutOfBounds(offset, type: id) }
    }

    /// The string at `offset` of the string section.
    private static func string(_ offset: UInt32, of id: BTFTypeID, in strings: BTFBytes) throws(BTFError) -> String {
        try check(offset, of: id, in: strings)
        return strings.count == 0 ? "" : try strings.cString(at: Int(offset))
    }

    /// The header of type `id` (not void).
    func record(_ id: BTFTypeID) throws(BTFError) -> BTFRecord {
        guard id.rawValue >= 1, Int(id.rawValue) <= typeCount else { throw .typeIDOutOfRange(id, typeCount: typeCount) }
        return try BTFRecord(id: id, offset: Int(recordOffsets[Int(id.rawValue) - 1]), in: types)
    }

    /// A name from the string section.
    func string(_ offset: UInt32, of id: BTFTypeID) throws(BTFError) -> String {
        try Self.string(offset, of: id, in: strings)
    }

    /// The kind, name and raw words of type `id`.
    public func type(_ id: BTFTypeID) throws(BTFError) -> BTFType {
        let r = try record(id)
        return BTFType(
            id: id, name: try string(r.nameOffset, of: id), kind: r.kind, kindFlag: r.kindFlag,
            vlen: r.vlen, sizeOrType: r.sizeOrType)
    }

    /// Ids of all types with this name (of any kind), in id order.
    public func typeIDs(named name: String) -> [BTFTypeID] {
        typesByName[name] ?? []
    }
}
