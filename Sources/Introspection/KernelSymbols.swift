import DebugInfo

/// The guest kernel's symbols at their link-time addresses: by name, and nearest-preceding
/// lookup for symbolizing kernel addresses. Per-CPU symbols (absolute offsets) are kept apart.
public struct KernelSymbols: Sendable {
    public struct Symbol: Sendable, Equatable {
        public let address: UInt64
        public let type: Character
        public let name: String
    }
    private let sorted: [Symbol]
    private let byName: [String: Symbol]
    public let perCPU: [String: UInt64]

    public var count: Int { sorted.count + perCPU.count }

    public init(_ symbols: [Symbol]) {
        var perCPU: [String: UInt64] = [:]
        var located: [Symbol] = []
        for s in symbols {
            if s.address < 0xFFFF_8000_0000_0000 { perCPU[s.name] = s.address } else { located.append(s) }
        }
        // Prefer global symbols when several share a name (static functions repeat across files).
        sorted = located.sorted { $0.address < $1.address }
        var byName: [String: Symbol] = [:]
        for s in sorted where byName[s.name] == nil || (s.type.isUppercase && !(byName[s.name]!.type.isUppercase)) {
            byName[s.name] = s
        }
        self.byName = byName
        self.perCPU = perCPU
    }

    public init(kallsyms: Kallsyms) {
        self.init(kallsyms.entries.map { Symbol(address: $0.address, type: $0.type, name: $0.name) })
    }

    /// From a System.map or an ELF symbol table (e.g. the -dbg package's vmlinux), read by DebugInfo.
    public init(table: SymbolTable) {
        self.init(table.symbols.map { s in
            let letter: Character = s.kind == .function ? "t" : s.kind == .object ? "d" : "?"
            let global = s.binding == .global || s.binding == .weak
            return Symbol(address: s.address, type: global ? Character(letter.uppercased()) : letter, name: s.name)
        })
    }

    public func address(of name: String) -> UInt64? { byName[name]?.address }

    /// The symbol at or before `address`, and the distance into it; nil outside the kernel's range.
    public func symbol(containing address: UInt64) -> (symbol: Symbol, offset: UInt64)? {
        var low = 0, high = sorted.count
        while low < high {
            let mid = (low + high) / 2
            if sorted[mid].address <= address { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let s = sorted[low - 1]
        // Past the last text symbol by more than 16 MiB is not "in" it.
        guard address - s.address < 16 << 20 else { return nil }
        return (s, address - s.address)
    }
}
