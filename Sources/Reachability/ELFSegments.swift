import Introspection

/// The program headers a scan needs from a loaded ELF object, read from the guest's own mapping
/// of the file (bounded reads; anything malformed gives nil, never a crash).
struct ELFSegments: Sendable {
    /// Run-time range of PT_GNU_RELRO, if any.
    var relocationReadOnly: Range<UInt64>?
    /// PT_TLS memory size rounded up to its alignment (0 without TLS).
    var threadLocalBytes: UInt64

    static let maximumHeaders = 64

    /// Reads the ELF header and program headers at `mappingStart` (the file's offset-0 mapping).
    static func read(mappingStart: UInt64, mappingEnd: UInt64, space: AddressSpace) -> ELFSegments? {
        guard let header = try? space.read(GuestVirtualAddress(mappingStart), count: 64),
              header[0] == 0x7F, header[1] == 0x45, header[2] == 0x4C, header[3] == 0x46, header[4] == 2 else { return nil }
        func u16(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(b[o]) | UInt64(b[o + 1]) << 8 }
        func u64(_ b: [UInt8], _ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
        let type = u16(header, 16), phoff = u64(header, 32), entrySize = u16(header, 54), count = u16(header, 56)
        guard entrySize == 56, count > 0, count <= UInt64(maximumHeaders), phoff < mappingEnd - mappingStart,
              phoff + count * 56 <= mappingEnd - mappingStart,
              let table = try? space.read(GuestVirtualAddress(mappingStart + phoff), count: Int(count * 56)) else { return nil }
        var firstLoad: UInt64?
        var relro: (UInt64, UInt64)?
        var tls: UInt64 = 0
        for i in 0..<Int(count) {
            let o = i * 56
            let kind = UInt32(truncatingIfNeeded: u64(table, o))
            let offset = u64(table, o + 8), vaddr = u64(table, o + 16), memsz = u64(table, o + 40), align = u64(table, o + 48)
            switch kind {
            case 1 where offset == 0 && firstLoad == nil: firstLoad = vaddr & ~0xFFF   // PT_LOAD of the headers
            case 0x6474_E552: relro = (vaddr, memsz)                                      // PT_GNU_RELRO
            case 7:                                                                       // PT_TLS
                let a = max(1, min(align, 4096))
                tls = (min(memsz, 1 << 20) + a - 1) / a * a
            default: break
            }
        }
        // ET_EXEC is linked at its run-time addresses; ET_DYN is placed where its first segment maps.
        let bias: UInt64 = type == 2 ? 0 : mappingStart &- (firstLoad ?? 0)
        var result = ELFSegments(relocationReadOnly: nil, threadLocalBytes: tls)
        if let (vaddr, memsz) = relro, memsz > 0, memsz < 1 << 32 {
            let start = bias &+ vaddr
            if start < start &+ memsz { result.relocationReadOnly = start..<(start &+ memsz) }
        }
        return result
    }
}
