/// One decoded `struct btf_type` header and where its kind-specific data starts.
struct BTFRecord: Sendable {
    let id: BTFTypeID
    /// Offset of the record in the type section.
    let offset: Int
    let nameOffset: UInt32
    let kind: BTFKind
    let vlen: Int
    let kindFlag: Bool
    let sizeOrType: UInt32

    /// The referenced type, for kinds whose third word is a type id.
    var type: BTFTypeID { BTFTypeID(sizeOrType) }
    var size: Int { Int(sizeOrType) }
    /// Offset of the kind-specific data that follows the 12-byte header.
    var dataOffset: Int { offset + 12 }

    /// Decodes the header at `offset`; throws for a truncated record or an unknown kind.
    init(id: BTFTypeID, offset: Int, in types: BTFBytes) throws(BTFError) {
        guard offset >= 0, types.count - offset >= 12 else { throw .truncatedType(id, offset: offset) }
        let info = try types.u32(at: offset + 4)
        let rawKind = UInt8((info >> 24) & 0x1F)
        guard let kind = BTFKind(rawValue: rawKind) else { throw .unknownKind(id, kind: rawKind) }
        self.id = id
        self.offset = offset
        self.nameOffset = try types.u32(at: offset)
        self.kind = kind
        self.vlen = Int(info & 0xFFFF)
        self.kindFlag = info & 0x8000_0000 != 0
        self.sizeOrType = try types.u32(at: offset + 8)
    }

    /// Total bytes of the record including its kind-specific data.
    var totalSize: Int { 12 + kind.trailingSize(vlen: vlen) }
}

/// One raw `btf_member` of a struct or union.
struct BTFRawMember: Sendable {
    let nameOffset: UInt32
    let type: BTFTypeID
    /// Bit offset from the start of the containing struct or union.
    let bitOffset: Int
    /// Bitfield width from the member offset word (kind_flag structs only); 0 otherwise.
    let bitfieldSize: Int
}

extension BTFRecord {
    /// The `index`-th member of a struct or union.
    func member(_ index: Int, in types: BTFBytes) throws(BTFError) -> BTFRawMember {
        let at = dataOffset + 12 * index
        let offset = try types.u32(at: at + 8)
        return BTFRawMember(
            nameOffset: try types.u32(at: at),
            type: BTFTypeID(try types.u32(at: at + 4)),
            bitOffset: Int(kindFlag ? offset & 0x00FF_FFFF : offset),
            bitfieldSize: kindFlag ? Int(offset >> 24) : 0)
    }

    /// The `index`-th enumerator of an ENUM or ENUM64: name offset and value.
    func enumerator(_ index: Int, in types: BTFBytes) throws(BTFError) -> (nameOffset: UInt32, value: Int64) {
        if kind == .enumeration64 {
            let at = dataOffset + 12 * index
            let low = UInt64(try types.u32(at: at + 4)), high = UInt64(try types.u32(at: at + 8))
            return (try types.u32(at: at), Int64(bitPattern: high << 32 | low))
        }
        let at = dataOffset + 8 * index
        let raw = try types.u32(at: at + 4)
        return (try types.u32(at: at), kindFlag ? Int64(Int32(bitPattern: raw)) : Int64(raw))
    }

    /// The `btf_array` data of an ARRAY: element type, index type, element count.
    func arrayInfo(in types: BTFBytes) throws(BTFError) -> (element: BTFTypeID, index: BTFTypeID, count: Int) {
        (BTFTypeID(try types.u32(at: dataOffset)), BTFTypeID(try types.u32(at: dataOffset + 4)),
         Int(try types.u32(at: dataOffset + 8)))
    }

    /// The encoding word of an INT.
    func integer(in types: BTFBytes) throws(BTFError) -> BTFInteger {
        let word = try types.u32(at: dataOffset)
        let encoding = (word >> 24) & 0x0F
        return BTFInteger(
            size: size, isSigned: encoding & 1 != 0, isChar: encoding & 2 != 0, isBool: encoding & 4 != 0,
            bitOffset: Int((word >> 16) & 0xFF), bits: Int(word & 0xFF))
    }
}
