/// A symbol of a loaded kernel module, from the module's own kallsyms (`mod->kallsyms`):
/// run-time address, `nm`-style type and name.
public struct KernelModuleSymbol: Sendable, Equatable {
    public let name: String
    public let address: UInt64
    public let size: UInt64
    public let type: Character
}

/// A module's symbols sorted by address, for nearest-preceding lookup.
public struct KernelModuleSymbols: Sendable {
    public let symbols: [KernelModuleSymbol]

    /// Sorts `symbols` by address (the module's table is in section order).
    public init(_ symbols: [KernelModuleSymbol]) {
        self.symbols = symbols.sorted { ($0.address, $0.name) < ($1.address, $1.name) }
    }

    /// The symbol at or before `address` and the distance into it, within `range` (the module
    /// region the address belongs to): nil before the first symbol, past a sized symbol's end, or
    /// when the nearest symbol lies outside `range`.
    public func symbol(containing address: UInt64, within range: Range<UInt64>) -> (symbol: KernelModuleSymbol, offset: UInt64)? {
        var low = 0, high = symbols.count
        while low < high {
            let mid = (low + high) / 2
            if symbols[mid].address <= address { low = mid + 1 } else { high = mid }
        }
        // Prefer a function or object over a zero-sized label at the same address.
        var index = low - 1
        while index > 0, symbols[index].size == 0, symbols[index - 1].address == symbols[index].address { index -= 1 }
        guard index >= 0 else { return nil }
        let found = symbols[index]
        guard range.contains(found.address) else { return nil }
        let offset = address &- found.address
        if found.size > 0, offset >= found.size { return nil }
        return (found, offset)
    }

    public func address(of name: String) -> UInt64? { symbols.first { $0.name == name }?.address }
}

/// Decodes a module's kallsyms tables as read from guest memory: `symtab` (an `Elf64_Sym` array,
/// 24 bytes each, addresses already relocated by the module loader), `strtab` (NUL-terminated
/// names, indexed by `st_name`) and `typetab` (one `nm` type letter per symbol). Guest data:
/// a name that runs off `strtab` or past `maximumNameLength` drops that symbol, never a trap.
enum ModuleSymbolDecoder {
    static let entrySize = 24
    /// KSYM_NAME_LEN in 6.1.
    static let maximumNameLength = 512
    /// More than any module has (the largest have some 60,000 with CONFIG_KALLSYMS_ALL).
    static let maximumSymbols = 1 << 18
    /// Bound on the string table read from the guest.
    static let maximumStringTable = 8 << 20

    /// The largest `st_name` in `symtab` (how much of the string table to read), or nil if the
    /// table holds no entries.
    static func largestNameOffset(_ symtab: [UInt8]) -> Int? {
        var largest: Int?
        var at = 0
        while at + entrySize <= symtab.count {
            let offset = Int(u32(symtab, at))
            largest = max(largest ?? 0, offset)
            at += entrySize
        }
        return largest
    }

    static func decode(symtab: [UInt8], strtab: [UInt8], typetab: [UInt8]) -> [KernelModuleSymbol] {
        var result: [KernelModuleSymbol] = []
        let count = min(symtab.count / entrySize, maximumSymbols)
        for index in 0..<count {
            let at = index * entrySize
            let nameOffset = Int(u32(symtab, at))
            let info = symtab[at + 4]
            let sectionIndex = UInt16(symtab[at + 6]) | UInt16(symtab[at + 7]) << 8
            let value = u64(symtab, at + 8), size = u64(symtab, at + 16)
            // STT_SECTION (3) and STT_FILE (4), undefined symbols and null addresses name nothing here.
            guard info & 0xF != 3, info & 0xF != 4, sectionIndex != 0, value != 0,
                  let name = string(strtab, at: nameOffset), !name.isEmpty else { continue }
            let type = index < typetab.count ? Character(Unicode.Scalar(typetab[index])) : "?"
            result.append(KernelModuleSymbol(name: name, address: value, size: size, type: type))
        }
        return result
    }

    /// The NUL-terminated string at `offset`, or nil if it is unterminated within the table or
    /// `maximumNameLength`, or not valid UTF-8 (a symbol name is ASCII).
    static func string(_ table: [UInt8], at offset: Int) -> String? {
        guard offset >= 0, offset < table.count else { return nil }
        let end = min(table.count, offset + maximumNameLength)
        guard let nul = table[offset..<end].firstIndex(of: 0) else { return nil }
        return String(validating: table[offset..<nul], as: UTF8.self)
    }

    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    static func u64(_ b: [UInt8], _ at: Int) -> UInt64 {
        UInt64(u32(b, at)) | UInt64(u32(b, at + 4)) << 32
    }
}
