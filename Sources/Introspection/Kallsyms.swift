import Glibc

/// The kernel's own compressed symbol table (kallsyms), found by its shape in an image of kernel
/// memory: a vmlinux file's loaded segments or the guest's kernel memory. Needs no System.map and
/// no symbols in the file (Debian ships both stripped).
///
/// Layout (x86-64, CONFIG_KALLSYMS_BASE_RELATIVE with absolute per-CPU symbols), each table
/// 8-byte aligned: `offsets[n]` (s32), `relative_base` (u64), `num_syms` (u32), `names`
/// (length-prefixed token strings), `markers[(n+255)/256]` (u32), optionally
/// `seqs_of_names[n]` (3 bytes each), `token_table` (256 NUL-terminated strings),
/// `token_index[256]` (u16). The token table is found by the run of single-digit tokens
/// "0".."9"; everything else is located from it and cross-checked, so a false match is rejected.
public struct Kallsyms: Sendable {
    /// One decoded symbol: its address in the image's address space, `nm`-style type and name.
    public struct Entry: Sendable, Equatable {
        public let address: UInt64
        public let type: Character
        public let name: String
    }

    public let entries: [Entry]
    /// The base the relative offsets count from (the kernel's `_text` in the image's address space).
    public let relativeBase: UInt64

    /// Decodes the table from `image`, whose first byte lies at virtual address `base`.
    public static func locate(in image: [UInt8], base: UInt64) throws(KallsymsError) -> Kallsyms {
        // SAFETY: `raw` is used only inside the closure: the decoder holding it is built and
        // dropped there, and what it returns (`Kallsyms`) holds copies, not pointers into `image`.
        let result = image.withUnsafeBytes { raw in Result { () throws(KallsymsError) -> Kallsyms in
            try Decoder(bytes: raw, base: base).decode()
        } }
        return try result.get()
    }
}

/// Why a kallsyms table could not be found or decoded.
public enum KallsymsError: Error, Equatable, Sendable, CustomStringConvertible {
    case tokenTableNotFound
    case symbolTableNotFound
    case corrupt(String)

    public var description: String {
        switch self {
        case .tokenTableNotFound: return "no kallsyms token table in the kernel image"
        case .symbolTableNotFound: return "kallsyms token table found, but no consistent symbol table before it"
        case .corrupt(let why): return "kallsyms table is corrupt: \(why)"
        }
    }
}

private struct Decoder {
    let bytes: UnsafeRawBufferPointer
    let base: UInt64
    static let maximumSymbols = 4_000_000
    static let searchWindow = 96 << 20

    // SAFETY: every read below checks `at` (and its width) against `bytes.count` first; the image
    // is untrusted, so no offset computed from it is used unchecked.
    func u8(_ at: Int) -> UInt8? { at >= 0 && at < bytes.count ? bytes[at] : nil }
    func u16(_ at: Int) -> UInt16? { at >= 0 && at + 2 <= bytes.count ? UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)) : nil }
    func u32(_ at: Int) -> UInt32? { at >= 0 && at + 4 <= bytes.count ? UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)) : nil }
    func u64(_ at: Int) -> UInt64? { at >= 0 && at + 8 <= bytes.count ? UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) : nil }

    /// Rounds a buffer offset up so that its virtual address is 8-byte aligned.
    func align8(_ offset: Int) -> Int {
        let misalignment = Int((base &+ UInt64(offset)) & 7)
        return misalignment == 0 ? offset : offset + 8 - misalignment
    }

    func decode() throws(KallsymsError) -> Kallsyms {
        for start in anchorCandidates() {
            guard let tokens = tokenTable(at: start) else { continue }
            if let table = try symbolTable(before: start, tokens: tokens) { return table }
        }
        throw anchorCandidates().isEmpty ? .tokenTableNotFound : .symbolTableNotFound
    }

    /// Plausible token-table starts: 8-byte aligned offsets just before the 48 tokens (0x00-0x2F) that precede each "0\01\0...9\0" run.
    func anchorCandidates() -> [Int] {
        let anchor: [UInt8] = Array("0\u{0}1\u{0}2\u{0}3\u{0}4\u{0}5\u{0}6\u{0}7\u{0}8\u{0}9\u{0}".utf8)
        guard let start = bytes.baseAddress else { return [] }
        var found: [Int] = []
        var from = 0
        while from < bytes.count, found.count < 64 {
            // SAFETY: memchr searches [from, count) of the buffer (from < count), and memcmp compares
            // anchor.count bytes at `at` only after `at + anchor.count <= count`; the anchor is not empty.
            // The walks back below index the raw buffer (unchecked in release builds) only in [0, at).
            guard let hit = memchr(start + from, 0x30, bytes.count - from) else { break }
            let at = UnsafeRawPointer(hit) - UnsafeRawPointer(start)
            from = at + 1
            guard at + anchor.count <= bytes.count,
                  anchor.withUnsafeBytes({ memcmp(start + at, $0.baseAddress!, anchor.count) }) == 0 else { continue }
            // at-1 is the NUL ending token 0x2F; walk back over the NULs ending tokens 0x2E...0x00.
            var cursor = at - 1
            var strings = 0
            while strings < 47, cursor > 0 {
                cursor -= 1
                if bytes[cursor] == 0 { strings += 1 }
            }
            guard strings == 47 else { continue }
            // Token 0 ends at `cursor`; it starts at an 8-byte aligned address with no NUL before `cursor`.
            var start = cursor - 1
            while start >= 0, start > cursor - 64, bytes[start] != 0 {
                if (base &+ UInt64(start)) & 7 == 0 { found.append(start) }
                start -= 1
            }
        }
        return found
    }

    /// Reads 256 tokens at `start` and checks the token index that follows them.
    func tokenTable(at start: Int) -> [[UInt8]]? {
        var tokens: [[UInt8]] = []
        tokens.reserveCapacity(256)
        var offsets: [Int] = []
        var cursor = start
        for _ in 0..<256 {
            offsets.append(cursor - start)
            var token: [UInt8] = []
            while true {
                guard let b = u8(cursor) else { return nil }
                cursor += 1
                if b == 0 { break }
                token.append(b)
                if token.count > 64 { return nil }
            }
            tokens.append(token)
        }
        let indexAt = align8(cursor)
        for i in 0..<256 {
            guard let v = u16(indexAt + 2 * i), Int(v) == offsets[i] else { return nil }
        }
        return tokens
    }

    /// Searches backwards from the token table for `relative_base, num_syms, names...` whose
    /// names, markers and name sequence end exactly at the token table.
    func symbolTable(before tokenTable: Int, tokens: [[UInt8]]) throws(KallsymsError) -> Kallsyms? {
        let lowest = max(0, tokenTable - Self.searchWindow)
        var firstAligned = tokenTable - 16
        while (base &+ UInt64(firstAligned)) & 7 != 0 { firstAligned -= 1 }
        var at = firstAligned
        while at >= lowest {
            defer { at -= 8 }
            guard let relativeBase = u64(at), relativeBase & 0x1F_FFFF == 0, relativeBase >= 0xFFFF_8000_0000_0000,
                  let count32 = u32(at + 8), count32 >= 256, Int(count32) <= Self.maximumSymbols
            else { continue }
            let count = Int(count32)
            guard let namesEnd = endOfNames(from: at + 16, count: count, limit: tokenTable) else { continue }
            let markersAt = align8(namesEnd)
            let markerCount = (count + 255) / 256
            guard u32(markersAt) == 0 else { continue }
            let markersEnd = align8(markersAt + 4 * markerCount)
            let withSequences = align8(markersEnd + 3 * count)
            guard markersEnd == tokenTable || withSequences == tokenTable else { continue }
            let offsetsAt = at - 4 * count
            guard offsetsAt >= 0 else { continue }
            let offsetsStart = offsetsAt - Int((base &+ UInt64(offsetsAt)) & 7)
            guard offsetsStart >= 0 else { continue }
            return try decodeSymbols(count: count, offsetsAt: offsetsStart, namesAt: at + 16,
                                     relativeBase: relativeBase, tokens: tokens)
        }
        return nil
    }

    /// Walks `count` length-prefixed names; nil if they run past `limit`.
    func endOfNames(from start: Int, count: Int, limit: Int) -> Int? {
        var cursor = start
        for _ in 0..<count {
            guard cursor < limit, let first = u8(cursor) else { return nil }
            var length = Int(first)
            cursor += 1
            if first & 0x80 != 0 {
                guard let second = u8(cursor) else { return nil }
                length = Int(first & 0x7F) | Int(second) << 7
                cursor += 1
            }
            guard length > 0 else { return nil }
            cursor += length
        }
        return cursor <= limit ? cursor : nil
    }

    func decodeSymbols(count: Int, offsetsAt: Int, namesAt: Int, relativeBase: UInt64,
                       tokens: [[UInt8]]) throws(KallsymsError) -> Kallsyms {
        var entries: [Kallsyms.Entry] = []
        entries.reserveCapacity(count)
        var cursor = namesAt
        var expanded: [UInt8] = []
        for i in 0..<count {
            guard let raw = u32(offsetsAt + 4 * i), var length = u8(cursor).map(Int.init) else {
                throw .corrupt("symbol \(i) lies outside the image")
            }
            cursor += 1
            if length & 0x80 != 0 {
                guard let second = u8(cursor) else { throw .corrupt("symbol \(i) name is truncated") }
                length = (length & 0x7F) | Int(second) << 7
                cursor += 1
            }
            guard cursor + length <= bytes.count else { throw .corrupt("symbol \(i) name is truncated") }
            expanded.removeAll(keepingCapacity: true)
            for j in 0..<length { expanded += tokens[Int(bytes[cursor + j])] }
            cursor += length
            guard let typeByte = expanded.first else { throw .corrupt("symbol \(i) has an empty name") }
            let offset = Int32(bitPattern: raw)
            // Absolute per-CPU symbols are stored as non-negative values; the rest count down from the base.
            let address = offset >= 0 ? UInt64(offset) : relativeBase &- 1 &- UInt64(bitPattern: Int64(offset))
            entries.append(Kallsyms.Entry(address: address, type: Character(UnicodeScalar(typeByte)),
                                          name: String(decoding: expanded.dropFirst(), as: UTF8.self)))
        }
        return Kallsyms(entries: entries, relativeBase: relativeBase)
    }
}
