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
        var symbols: [Symbol] = []
        try forEachEntry(section, header: header) { raw, text in
            guard raw.st_shndx != 0, let kind = Self.kind(info: raw.st_info) else { return }
            symbols.append(
                Symbol(
                    name: text, address: raw.st_value, size: raw.st_size, kind: kind,
                    binding: Self.binding(info: raw.st_info)))
        }
        return symbols
    }

    /// `symbols()` as a lookup table.
    public func symbolTable() throws(DebugInfoError) -> SymbolTable {
        SymbolTable(try symbols())
    }

    /// Every named entry of one symbol table as stored (undefined ones included), in table order;
    /// empty if the file has no such table.
    public func symbolEntries(in table: ELFSymbolTableKind) throws(DebugInfoError) -> [ELFSymbolEntry] {
        let wanted = table == .symtab ? sectionTypeSymtab : sectionTypeDynsym
        var found: (OpaquePointer, GElf_Shdr)?
        try forEachSection { section, header, _ in
            if header.sh_type == wanted { found = (section, header) }
            return found == nil
        }
        guard let (section, header) = found else { return [] }
        var entries: [ELFSymbolEntry] = []
        try forEachEntry(section, header: header) { raw, text in
            entries.append(
                ELFSymbolEntry(
                    name: text, value: raw.st_value, size: raw.st_size, type: raw.st_info & 0xF,
                    binding: Self.binding(info: raw.st_info), sectionIndex: raw.st_shndx))
        }
        return entries
    }

    /// Calls `body` with each entry of a symbol table section that has a non-empty name.
    private func forEachEntry(
        _ section: OpaquePointer, header: GElf_Shdr, _ body: (GElf_Sym, String) -> Void
    ) throws(DebugInfoError) {
        guard let data = elf_getdata(section, nil) else {
            if header.sh_size == 0 { return }
            throw .symbolTableUnreadable(path: path, reason: libelfMessage())
        }
        let entrySize = gelf_fsize(elf, ELF_T_SYM, 1, UInt32(EV_CURRENT))
        guard entrySize > 0 else { throw .symbolTableUnreadable(path: path, reason: libelfMessage()) }
        // SAFETY: elf_getdata returned a non-nil Elf_Data owned by the Elf handle; entries are then read only through gelf_getsym, which checks the index.
        let count = data.pointee.d_size / entrySize
        let names = Int(header.sh_link)
        for index in 0..<count {
            var raw = GElf_Sym()
            guard gelf_getsym(data, Int32(clamping: index), &raw) != nil else {
                throw .symbolTableUnreadable(path: path, reason: "symbol \(index): \(libelfMessage())")
            }
            guard raw.st_name != 0, let name = elf_strptr(elf, names, Int(raw.st_name)) else { continue }
            let text = String(cString: name)
            guard !text.isEmpty else { continue }
            body(raw, text)
        }
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
