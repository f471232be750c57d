/// Which symbol table of an ELF file: the full `.symtab` or the dynamic `.dynsym`.
public enum ELFSymbolTableKind: Sendable, Equatable {
    case symtab
    case dynsym
}

/// One named entry of `.symtab` or `.dynsym` as stored, with the raw type and section index that
/// `Symbol` folds away.
public struct ELFSymbolEntry: Sendable, Equatable {
    public var name: String
    /// `st_value`: the link-time address for defined symbols.
    public var value: UInt64
    /// `st_size`; 0 when unknown.
    public var size: UInt64
    /// `st_info & 0xf`: `STT_FUNC` = 2, `STT_GNU_IFUNC` = 10, …
    public var type: UInt8
    public var binding: SymbolBinding
    /// `st_shndx`: 0 (`SHN_UNDEF`) for symbols another object defines, such as PLT imports.
    public var sectionIndex: UInt16

    public static let functionType: UInt8 = 2
    public static let indirectFunctionType: UInt8 = 10

    public init(name: String, value: UInt64, size: UInt64, type: UInt8, binding: SymbolBinding, sectionIndex: UInt16) {
        self.name = name
        self.value = value
        self.size = size
        self.type = type
        self.binding = binding
        self.sectionIndex = sectionIndex
    }

    /// Defined in this file (`st_shndx` ≠ `SHN_UNDEF`).
    public var isDefined: Bool { sectionIndex != 0 }
    /// `STT_FUNC` (an `STT_GNU_IFUNC` names its resolver, not the function, and is not included).
    public var isFunction: Bool { type == Self.functionType }
    /// `STT_GNU_IFUNC`: the value is the resolver that picks the implementation at load time.
    public var isIndirectFunction: Bool { type == Self.indirectFunctionType }
}
