import CElfDW

private let sectionTypeNoBits: UInt32 = 8
private let sectionFlagCompressed: UInt64 = 1 << 11

extension ELFFile {
    /// The largest decompressed size accepted for an `SHF_COMPRESSED` section (1 GiB).
    public static let maximumDecompressedSectionSize: UInt64 = 1 << 30

    /// The names of all sections, in section-header order (unnamed sections are skipped).
    public func sectionNames() throws(DebugInfoError) -> [String] {
        var names: [String] = []
        try forEachSection { _, _, name in
            names.append(name)
            return true
        }
        return names
    }

    /// The first section called `name` with its contents (for example `.BTF` of a vmlinux, several
    /// MiB), or nil if there is none. Compressed sections are returned decompressed.
    public func section(named name: String) throws(DebugInfoError) -> ELFSection? {
        var found: (section: OpaquePointer, header: GElf_Shdr)?
        try forEachSection { section, header, sectionName in
            guard sectionName == name else { return true }
            found = (section, header)
            return false
        }
        guard let found else { return nil }
        let section = found.section
        var header = found.header
        if header.sh_type == sectionTypeNoBits {
            return ELFSection(
                name: name, type: header.sh_type, flags: header.sh_flags, address: header.sh_addr,
                size: header.sh_size, bytes: [])
        }
        if header.sh_flags & sectionFlagCompressed != 0 {
            var compression = GElf_Chdr()
            guard gelf_getchdr(section, &compression) != nil else {
                throw .sectionUnreadable(path: path, section: name, reason: "compression header: \(libelfMessage())")
            }
            guard compression.ch_size <= Self.maximumDecompressedSectionSize else {
                throw .sectionUnreadable(
                    path: path, section: name,
                    reason: "claims \(compression.ch_size) bytes decompressed, limit \(Self.maximumDecompressedSectionSize)")
            }
            guard elf_compress(section, 0, 0) >= 0, gelf_getshdr(section, &header) != nil else {
                throw .sectionUnreadable(path: path, section: name, reason: "decompression: \(libelfMessage())")
            }
        }
        let bytes = try readData(section, name: name, expectedSize: header.sh_size)
        return ELFSection(
            name: name, type: header.sh_type, flags: header.sh_flags, address: header.sh_addr,
            size: header.sh_size, bytes: bytes)
    }

    /// Calls `body` with each section's handle, header and name until it returns false.
    func forEachSection(
        _ body: (OpaquePointer, GElf_Shdr, String) throws(DebugInfoError) -> Bool
    ) throws(DebugInfoError) {
        var count = 0
        var namesIndex = 0
        guard elf_getshdrnum(elf, &count) == 0, elf_getshdrstrndx(elf, &namesIndex) == 0 else {
            throw .malformedELF(path: path, reason: "section headers: \(libelfMessage())")
        }
        var section: OpaquePointer? = nil
        // libelf validated the count against the file; the bound also guards the iteration.
        for _ in 0..<count {
            guard let next = elf_nextscn(elf, section) else { break }
            section = next
            var header = GElf_Shdr()
            guard gelf_getshdr(next, &header) != nil else {
                throw .malformedELF(path: path, reason: "section header: \(libelfMessage())")
            }
            guard let name = elf_strptr(elf, namesIndex, Int(header.sh_name)) else { continue }
            guard try body(next, header, String(cString: name)) else { return }
        }
    }

    /// The contents of `section` as libelf presents them (bytes for `SHT_PROGBITS`; host byte order
    /// for typed sections), concatenating every data chunk.
    private func readData(_ section: OpaquePointer, name: String, expectedSize: UInt64) throws(DebugInfoError)
        -> [UInt8]
    {
        var bytes: [UInt8] = []
        var data: UnsafeMutablePointer<Elf_Data>? = nil
        while let next = elf_getdata(section, data) {
            data = next
            let size = next.pointee.d_size
            guard size > 0 else { continue }
            guard let buffer = next.pointee.d_buf else {
                throw .sectionUnreadable(path: path, section: name, reason: "no data for \(size) bytes")
            }
            // SAFETY: libelf's Elf_Data says d_buf holds d_size bytes, valid while the Elf handle (self) lives.
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: size))
        }
        if data == nil, expectedSize > 0 {
            throw .sectionUnreadable(path: path, section: name, reason: libelfMessage())
        }
        return bytes
    }
}
