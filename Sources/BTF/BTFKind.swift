/// The id of a BTF type: 0 is void, real types are numbered from 1 in section order.
public struct BTFTypeID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: UInt32) { self.rawValue = value }

    public static let void = BTFTypeID(0)
    public static func < (a: BTFTypeID, b: BTFTypeID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "#\(rawValue)" }
}

/// The kind of a BTF type record (`BTF_KIND_*`).
public enum BTFKind: UInt8, Sendable, CustomStringConvertible {
    case integer = 1
    case pointer = 2
    case array = 3
    case structure = 4
    case union = 5
    case enumeration = 6
    case forward = 7
    case typedef = 8
    case volatile = 9
    case const = 10
    case restrict = 11
    case function = 12
    case functionPrototype = 13
    case variable = 14
    case dataSection = 15
    case float = 16
    case declarationTag = 17
    case typeTag = 18
    case enumeration64 = 19

    /// Bytes of kind-specific data after the 12-byte `btf_type` for `vlen` entries.
    func trailingSize(vlen: Int) -> Int {
        switch self {
        case .integer, .variable, .declarationTag: 4
        case .array: 12
        case .structure, .union, .dataSection, .enumeration64: 12 * vlen
        case .enumeration, .functionPrototype: 8 * vlen
        case .pointer, .forward, .typedef, .volatile, .const, .restrict, .function, .float, .typeTag: 0
        }
    }

    /// Size in bytes of each named `vlen` entry (member, enumerator, parameter), or nil if the kind has none.
    var namedEntrySize: Int? {
        switch self {
        case .structure, .union, .enumeration64: 12
        case .enumeration, .functionPrototype: 8
        default: nil
        }
    }

    /// Kinds that only refer to another type: followed when resolving.
    var isReference: Bool {
        switch self {
        case .typedef, .volatile, .const, .restrict, .typeTag: true
        default: false
        }
    }

    var isComposite: Bool { self == .structure || self == .union }
    var isEnumeration: Bool { self == .enumeration || self == .enumeration64 }

    public var description: String {
        switch self {
        case .integer: "int"
        case .pointer: "pointer"
        case .array: "array"
        case .structure: "struct"
        case .union: "union"
        case .enumeration: "enum"
        case .forward: "forward declaration"
        case .typedef: "typedef"
        case .volatile: "volatile"
        case .const: "const"
        case .restrict: "restrict"
        case .function: "function"
        case .functionPrototype: "function prototype"
        case .variable: "variable"
        case .dataSection: "data section"
        case .float: "float"
        case .declarationTag: "declaration tag"
        case .typeTag: "type tag"
        case .enumeration64: "enum64"
        }
    }
}
