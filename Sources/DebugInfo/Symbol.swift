/// What a symbol names.
public enum SymbolKind: Sendable, Equatable {
    /// Code: `STT_FUNC`, `STT_GNU_IFUNC`, or a text symbol (`T`/`t`) in System.map.
    case function
    /// Data: `STT_OBJECT`, or a data/bss/rodata symbol in System.map.
    case object
    /// Anything else (`STT_NOTYPE`, TLS, absolute System.map entries, …).
    case other
}

/// How widely a symbol is visible.
public enum SymbolBinding: Sendable, Equatable {
    case local
    case global
    case weak
    /// Any other `STB_*` value (such as `STB_GNU_UNIQUE`).
    case other(UInt8)
}

/// A named address from an ELF symbol table or a System.map file (link-time address).
public struct Symbol: Sendable, Equatable {
    public var name: String
    /// `st_value`: the link-time address.
    public var address: UInt64
    /// `st_size`; 0 when unknown (System.map never has sizes).
    public var size: UInt64
    public var kind: SymbolKind
    public var binding: SymbolBinding

    public init(name: String, address: UInt64, size: UInt64, kind: SymbolKind, binding: SymbolBinding) {
        self.name = name
        self.address = address
        self.size = size
        self.kind = kind
        self.binding = binding
    }

    /// Whether `address` lies inside this symbol: `[address, address + size)`, or at/after it when the
    /// size is unknown.
    public func covers(_ target: UInt64) -> Bool {
        guard target >= address else { return false }
        return size == 0 || target - address < size
    }
}
