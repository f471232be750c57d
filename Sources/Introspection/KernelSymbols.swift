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

    /// Parses `System.map` text (`ADDRESS TYPE NAME` lines); other lines are skipped.
    public init(systemMap text: String) {
        var symbols: [Symbol] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 3, let address = UInt64(parts[0], radix: 16), let type = parts[1].first else { continue }
            symbols.append(Symbol(address: address, type: type, name: String(parts[2])))
        }
        self.init(symbols)
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
