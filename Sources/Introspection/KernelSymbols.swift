import DebugInfo

/// The guest kernel's symbols at their link-time addresses, in one DebugInfo `SymbolTable`:
/// by name, and nearest-preceding lookup for symbolizing kernel addresses. Per-CPU symbols are
/// offsets into the per-CPU area (addresses below the kernel half) and are asked for apart.
public struct KernelSymbols: Sendable {
    public let table: SymbolTable
    static let kernelHalf: UInt64 = 0xFFFF_8000_0000_0000

    public var count: Int { table.count }

    /// From a System.map or an ELF symbol table (e.g. the -dbg package's vmlinux), read by DebugInfo.
    public init(table: SymbolTable) {
        self.table = table
    }

    public init(kallsyms: Kallsyms) {
        self.init(table: SymbolTable(kallsyms.entries.map { entry in
            let (kind, binding) = SystemMap.classify(entry.type)
            return Symbol(name: entry.name, address: entry.address, size: 0, kind: kind, binding: binding)
        }))
    }

    /// Link-time address of a kernel text or data symbol.
    public func address(of name: String) -> UInt64? {
        table.address(of: name).flatMap { $0 >= Self.kernelHalf ? $0 : nil }
    }

    /// Offset of a per-CPU variable from a CPU's per-CPU base.
    public func perCPUOffset(of name: String) -> UInt64? {
        table.address(of: name).flatMap { $0 < Self.kernelHalf ? $0 : nil }
    }

    /// The symbol at or before a kernel `address`, and the distance into it; nil outside the
    /// kernel's range (below its first symbol, or more than 16 MiB past the last one).
    public func symbol(containing address: UInt64) -> (symbol: Symbol, offset: UInt64)? {
        guard address >= Self.kernelHalf, let found = table.lookup(address), found.symbol.address >= Self.kernelHalf,
              found.offset < 16 << 20 else { return nil }
        return found
    }
}
