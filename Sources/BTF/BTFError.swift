/// A section of a BTF blob, as named in errors.
public enum BTFSection: String, Sendable {
    case types
    case strings
}

/// Why BTF data could not be parsed or a lookup in it failed.
public enum BTFError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the 24-byte header.
    case truncatedHeader(size: Int)
    /// The magic is byte-swapped: BTF of a big-endian target.
    case bigEndian
    /// The first two bytes are not the BTF magic 0xEB9F.
    case badMagic(UInt16)
    /// A header version other than 1.
    case unsupportedVersion(UInt8)
    /// `hdr_len` is shorter than the header or longer than the data.
    case badHeaderLength(UInt32, size: Int)
    /// A section's offset and length (relative to the end of the header) leave the data.
    case sectionOutOfBounds(BTFSection, offset: UInt32, length: UInt32, available: Int)
    /// The string section does not start with the empty string (a NUL at offset 0).
    case missingEmptyString
    /// The string section does not end with a NUL, so its last string has no end.
    case unterminatedStringSection
    /// A type record, or the data that follows it, runs past the end of the type section.
    case truncatedType(BTFTypeID, offset: Int)
    /// A type record has a kind this parser does not know, so it cannot be skipped.
    case unknownKind(BTFTypeID, kind: UInt8)
    /// A name offset in (or after) a type record points outside the string section.
    case stringOffsetOutOfBounds(UInt32, type: BTFTypeID)
    /// A read outside the stored bytes (defensive; parsing validates records first).
    case readOutOfBounds(offset: Int, length: Int)
    /// A type id that is not 0 (void) or 1...typeCount.
    case typeIDOutOfRange(BTFTypeID, typeCount: Int)
    /// A chain of typedefs, qualifiers or arrays too long to follow: a cycle, in practice.
    case resolveDepthExceeded(BTFTypeID)
    /// Anonymous struct/union members nested too deeply to search.
    case nestingTooDeep(BTFTypeID)
    /// No type of a wanted kind has this name.
    case noSuchType(String)
    /// Several structs or unions have this name; `BTF.structures(named:)` lists them.
    case ambiguousType(String, [BTFTypeID])
    /// A member path is empty or has an empty component.
    case invalidPath(String)
    /// A member path goes through something that is not a struct or union.
    case notComposite(String, BTFKind?)
    /// The struct or union (named for the message) has no member of this name.
    case noSuchMember(String, in: String)
    /// No enumerator of this name (in the named enum, when given).
    case noSuchEnumerator(String, in: String?)
    /// Enumerators of this name in different enums have different values.
    case ambiguousEnumerator(String, values: [Int64])
    /// The type has no size: void, a forward declaration, a function, a variable, ...
    case unsizedType(BTFTypeID)
    /// The size of an array does not fit in an `Int`.
    case sizeOverflow(BTFTypeID)
    /// The type is not a data type (a variable, data section or declaration tag).
    case notADataType(BTFTypeID, BTFKind)
    /// The type is not of the kind the query needs.
    case unexpectedKind(BTFTypeID, BTFKind?)

    public var description: String {
        switch self {
        case .truncatedHeader(let size): "BTF data of \(size) bytes is shorter than the 24-byte header"
        case .bigEndian: "BTF data is big-endian; only little-endian BTF is supported"
        case .badMagic(let magic): "bad BTF magic 0x\(String(magic, radix: 16)) (expected 0xeb9f)"
        case .unsupportedVersion(let v): "unsupported BTF version \(v) (expected 1)"
        case .badHeaderLength(let len, let size): "BTF header length \(len) is invalid for \(size) bytes of data"
        case .sectionOutOfBounds(let s, let off, let len, let avail):
            "BTF \(s.rawValue) section at \(off) of length \(len) exceeds the \(avail) bytes after the header"
        case .missingEmptyString: "BTF string section does not start with a NUL"
        case .unterminatedStringSection: "BTF string section does not end with a NUL"
        case .truncatedType(let id, let off): "BTF type \(id) at offset \(off) runs past the type section"
        case .unknownKind(let id, let kind): "BTF type \(id) has unknown kind \(kind)"
        case .stringOffsetOutOfBounds(let off, let id): "BTF type \(id) has name offset \(off) outside the string section"
        case .readOutOfBounds(let off, let len): "BTF read of \(len) bytes at \(off) is out of bounds"
        case .typeIDOutOfRange(let id, let count): "BTF type id \(id) is out of range (\(count) types)"
        case .resolveDepthExceeded(let id): "BTF type \(id): reference chain too deep (cycle?)"
        case .nestingTooDeep(let id): "BTF type \(id): anonymous members nested too deeply"
        case .noSuchType(let name): "no BTF type named \(name)"
        case .ambiguousType(let name, let ids): "several types are named \(name): \(ids)"
        case .invalidPath(let path): "invalid member path '\(path)'"
        case .notComposite(let path, let kind):
            "'\(path)' is \(kind.map { "a \($0)" } ?? "void"), not a struct or union"
        case .noSuchMember(let member, let outer): "\(outer) has no member \(member)"
        case .noSuchEnumerator(let name, let e): "no enumerator \(name)" + (e.map { " in enum \($0)" } ?? "")
        case .ambiguousEnumerator(let name, let values): "enumerator \(name) has several values: \(values)"
        case .unsizedType(let id): "BTF type \(id) has no size"
        case .sizeOverflow(let id): "size of BTF type \(id) overflows"
        case .notADataType(let id, let kind): "BTF type \(id) is a \(kind), not a data type"
        case .unexpectedKind(let id, let kind): "BTF type \(id) is \(kind.map { "a \($0)" } ?? "void"), not of the kind asked for"
        }
    }
}
