import CElfDW

private let sectionTypeSymtab: UInt32 = 2
private let sectionTypeDynsym: UInt32 = 11

extension ELFFile {
    /// The defined, named symbols of `.symtab`, or of `.dynsym` when there is no `.symtab`; empty if
    /// the file has neither. Section and file symbols are left out.
    public func symbols() throws(DebugInfoError) -> [Symbol] {
        var symtab: (OpaquePointer, GElf_Shdr)?
        var dynsym: (OpaquePointer, GElf_Shdr)?
        try forEachSection { section, header, _ in
            if header.sh_type == sectionTypeSymtab, symtab == nil { symtab = (section, header) }
            if header.sh_type == sectionTypeDynsym, dynsym == nil { dynsym = (section, header) }
            return symtab == nil
        }
        guard let (section, header) = symtab ?? dynsym else { return [] }
        return try readSymbols(section, header: header)
    }

    /// `symbols()` as a lookup table.
    public func symbolTable() throws(DebugInfoError) -> SymbolTable {
        SymbolTable(try symbols())
    }

    private func readSymbols(_ section: OpaquePointer, header: GElf_Shdr) throws(DebugInfoError) -> [Symbol] {
        guard let data = elf_getdata(section, nil) else {
            if header.sh_size == 0 { return [] }
            throw .symbolTableUnreadable(path: path, reason: libelfMessage())
        }
        let entrySize = gelf_fsize(elf, ELF_T_SYM, 1, UInt32(EV_CURRENT))
        guard entrySize > 0 else { throw .symbolTableUnreadable(path: path, reason: libelfMessage()) }
        let count = data.pointee.d_size / entrySize
        let names = Int(header.sh_link)
        var symbols: [Symbol] = []
        symbols.reserveCapacity(min(count, 1 << 16))  // count comes from the file
        for index in 0..<count {
            var raw = GElf_Sym()
            guard gelf_getsym(data, Int32(clamping: index), &raw) != nil else {
                throw .symbolTableUnreadable(path: path, reason: "symbol \(index): \(libelfMessage())")
            }
            guard raw.st_shndx != 0, let kind = Self.kind(info: raw.st_info), raw.st_name != 0,
                let name = elf_strptr(elf, names, Int(raw.st_name))
            else { continue }
            let text = String(cString: name)
            guard !text.isEmpty else { continue }
            symbols.append(
                Symbol(
                    name: text, address: raw.st_value, size: raw.st_size, kind: kind,
                    binding: Self.binding(info: raw.st_info)))
        }
        return symbols
    }

    /// The kind for `st_info`'s type, or nil for section and file symbols.
    private static func kind(info: UInt8) -> SymbolKind? {
        switch info & 0xF {
        case 2, 10: .function  // STT_FUNC, STT_GNU_IFUNC
        case 1, 5: .object  // STT_OBJECT, STT_COMMON
        case 3, 4: nil  // STT_SECTION, STT_FILE
        default: .other
        }
    }

    private static func binding(info: UInt8) -> SymbolBinding {
        switch info >> 4 {
        case 0: .local
        case 1: .global
        case 2: .weak
        default: .other(info >> 4)
        }
    }
}
