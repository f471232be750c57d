/// An immutable table of symbols sorted by address: address → nearest preceding symbol, and
/// name → address. Used for kernel addresses (System.map or vmlinux `.symtab`) and for any ELF
/// whose addresses are looked up without libdwfl.
public struct SymbolTable: Sendable {
    /// All symbols, by ascending address; at one address the preferred symbol comes first.
    public let symbols: [Symbol]
    private let preferredIndexByName: [String: Int]

    public init(_ symbols: [Symbol]) {
        let sorted = symbols.sorted { a, b in
            a.address != b.address ? a.address < b.address : Self.isPreferred(a, over: b)
        }
        var byName: [String: Int] = [:]
        byName.reserveCapacity(sorted.count)
        for (index, symbol) in sorted.enumerated() {
            if let existing = byName[symbol.name], !Self.isPreferred(symbol, over: sorted[existing]) { continue }
            byName[symbol.name] = index
        }
        self.symbols = sorted
        preferredIndexByName = byName
    }

    public var count: Int { symbols.count }
    public var isEmpty: Bool { symbols.isEmpty }

    /// The symbol `address` falls in and the offset from its start: the nearest symbol at or below
    /// `address`, where a symbol with a nonzero size only covers `[address, address + size)`. Of
    /// several symbols at the same address the function / global one wins over local aliases.
    public func lookup(_ address: UInt64) -> (symbol: Symbol, offset: UInt64)? {
        // First index whose address is above `address`.
        var low = 0
        var high = symbols.count
        while low < high {
            let middle = (low + high) / 2
            if symbols[middle].address <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let start = symbols[low - 1].address
        var index = low - 1
        while index > 0, symbols[index - 1].address == start { index -= 1 }
        // Symbols at one address are in preference order.
        for candidate in symbols[index..<low] where candidate.covers(address) {
            return (candidate, address - start)
        }
        return nil
    }

    /// The address of the symbol called `name` (the global function if the name is also used by
    /// local symbols), or nil.
    public func address(of name: String) -> UInt64? {
        symbol(named: name)?.address
    }

    /// The preferred symbol called `name`, or nil.
    public func symbol(named name: String) -> Symbol? {
        preferredIndexByName[name].map { symbols[$0] }
    }

    /// Whether `a` should be reported instead of `b` when both name the same address: functions over
    /// data over other symbols, then global over weak over local, then sized over unsized, then by name.
    static func isPreferred(_ a: Symbol, over b: Symbol) -> Bool {
        let left = (kindRank(a.kind), bindingRank(a.binding), a.size == 0 ? 1 : 0)
        let right = (kindRank(b.kind), bindingRank(b.binding), b.size == 0 ? 1 : 0)
        return left != right ? left < right : a.name < b.name
    }

    private static func kindRank(_ kind: SymbolKind) -> Int {
        switch kind {
        case .function: 0
        case .object: 1
        case .other: 2
        }
    }

    private static func bindingRank(_ binding: SymbolBinding) -> Int {
        switch binding {
        case .global: 0
        case .weak: 1
        case .other: 2
        case .local: 3
        }
    }
}
