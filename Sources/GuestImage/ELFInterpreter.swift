/// Finds the program interpreter (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`)
/// of an ELF file: present exactly when the file is dynamically linked.
enum ELFInterpreter {
    private static let ptInterp: UInt32 = 3

    /// The interpreter path, or nil for non-ELF, static or malformed files.
    /// Every read is bounds-checked; handles 32/64-bit and both byte orders.
    static func path(in bytes: [UInt8]) -> String? {
        guard bytes.count >= 16, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C,
            bytes[3] == 0x46
        else { return nil }
        let is64: Bool
        switch bytes[4] {
        case 1: is64 = false
        case 2: is64 = true
        default: return nil
        }
        let reader: Reader
        switch bytes[5] {
        case 1: reader = Reader(bytes: bytes, littleEndian: true)
        case 2: reader = Reader(bytes: bytes, littleEndian: false)
        default: return nil
        }
        guard let phoff = is64 ? reader.u64(at: 0x20) : reader.u32(at: 0x1C).map(UInt64.init),
            let phentsize = reader.u16(at: is64 ? 0x36 : 0x2A),
            let phnum = reader.u16(at: is64 ? 0x38 : 0x2C),
            phentsize >= (is64 ? 56 : 32)
        else { return nil }
        guard let base = Int(exactly: phoff) else { return nil }
        for index in 0..<Int(phnum) {
            let (at, overflow) = base.addingReportingOverflow(Int(phentsize) * index)
            guard !overflow else { return nil }
            guard let type = reader.u32(at: at) else { return nil }
            guard type == ptInterp else { continue }
            let offset = is64 ? reader.u64(at: at + 8) : reader.u32(at: at + 4).map(UInt64.init)
            let size = is64 ? reader.u64(at: at + 32) : reader.u32(at: at + 16).map(UInt64.init)
            guard let offset, let size, let start = Int(exactly: offset),
                let count = Int(exactly: size), start <= bytes.count, count <= bytes.count - start
            else { return nil }
            let raw = bytes[start..<(start + count)].prefix { $0 != 0 }
            return raw.isEmpty ? nil : String(decoding: raw, as: UTF8.self)
        }
        return nil
    }

    /// Bounds-checked integer reads.
    private struct Reader {
        let bytes: [UInt8]
        let littleEndian: Bool

        func u16(at offset: Int) -> UInt16? { read(offset, 2).map(UInt16.init) }
        func u32(at offset: Int) -> UInt32? { read(offset, 4).map(UInt32.init) }
        func u64(at offset: Int) -> UInt64? { read(offset, 8) }

        private func read(_ offset: Int, _ width: Int) -> UInt64? {
            guard offset >= 0, offset <= bytes.count - width else { return nil }
            var value: UInt64 = 0
            for i in 0..<width {
                let byte = UInt64(bytes[offset + (littleEndian ? width - 1 - i : i)])
                value = value << 8 | byte
            }
            return value
        }
    }
}
