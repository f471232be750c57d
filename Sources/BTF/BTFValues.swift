/// The header of one BTF type: kind, name and the raw words; see `BTF.type(_:)`.
public struct BTFType: Sendable, Equatable {
    public let id: BTFTypeID
    /// Empty for anonymous types.
    public let name: String
    public let kind: BTFKind
    public let kindFlag: Bool
    /// Number of kind-specific entries (members, enumerators, parameters, variables).
    public let vlen: Int
    /// Size in bytes or referenced type id, depending on the kind.
    public let sizeOrType: UInt32
}

/// An INT type's size and encoding.
public struct BTFInteger: Sendable, Equatable {
    public let size: Int
    public let isSigned: Bool
    public let isChar: Bool
    public let isBool: Bool
    /// Legacy bitfield encoding: offset of the value within the storage, in bits.
    public let bitOffset: Int
    /// Number of value bits.
    public let bits: Int

    public init(size: Int, isSigned: Bool, isChar: Bool, isBool: Bool, bitOffset: Int, bits: Int) {
        self.size = size
        self.isSigned = isSigned
        self.isChar = isChar
        self.isBool = isBool
        self.bitOffset = bitOffset
        self.bits = bits
    }
}

/// A named struct or union.
public struct BTFStructure: Sendable, Equatable {
    public let id: BTFTypeID
    public let name: String
    public let size: Int
    public let isUnion: Bool
}

/// One enumerator of an ENUM or ENUM64.
public struct BTFEnumerator: Sendable, Equatable {
    public let name: String
    /// The value; unsigned 64-bit values above `Int64.max` keep their bit pattern.
    public let value: Int64
}

/// A direct member of a struct or union, as recorded.
public struct BTFField: Sendable, Equatable {
    /// Empty for anonymous members.
    public let name: String
    /// Bits from the start of the containing struct or union.
    public let bitOffset: Int
    /// Width of a bitfield, nil for ordinary members.
    public let bitfieldSize: Int?
    public let type: BTFTypeID
}

/// What a type is once typedefs, qualifiers and type tags are peeled off.
public enum BTFResolvedType: Sendable, Equatable {
    case void
    case integer(BTFInteger)
    case pointer(pointee: BTFTypeID)
    case array(element: BTFTypeID, count: Int)
    case structure(BTFTypeID)
    case union(BTFTypeID)
    case enumeration(BTFTypeID)
    case forward(isUnion: Bool)
    case float(size: Int)
    /// A FUNC or FUNC_PROTO.
    case function(BTFTypeID)
}

/// A member found by path: where it is in the outermost struct and what its type is.
public struct BTFMember: Sendable, Equatable {
    /// The dotted path that was looked up.
    public let path: String
    /// Bytes from the start of the outermost struct (rounded down for bitfields).
    public let offset: Int
    /// Bytes of the member's type (for a bitfield, of its storage type).
    public let size: Int
    /// Bits from the start of the outermost struct.
    public let bitOffset: Int
    /// Width of a bitfield, nil for ordinary members.
    public let bitfieldSize: Int?
    /// The declared type, possibly a typedef or qualifier.
    public let typeID: BTFTypeID
    /// The type after peeling typedefs and qualifiers.
    public let resolvedTypeID: BTFTypeID
    public let type: BTFResolvedType

    /// Element count when the member is an array.
    public var arrayCount: Int? {
        if case .array(_, let count) = type { count } else { nil }
    }

    /// Pointee type id when the member is a pointer.
    public var pointee: BTFTypeID? {
        if case .pointer(let pointee) = type { pointee } else { nil }
    }
}
