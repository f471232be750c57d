import DebugInfo

/// Where the three jumps of one exitless entry go in its file (file offsets, all in the entry's
/// page, so that the page cache holds all or none of them): the entry's `jmp rel8`, the padding
/// `call rel32` (right before the entry where there is room, else in other padding within the
/// jump's reach), and the `push imm32; ret` hop in padding of the page.
struct ExitlessPlacement: Sendable, Equatable {
    /// The allocator's first byte (2 bytes written: `jmp rel8` to `call`).
    var entry: UInt64
    /// 5 bytes of padding within a `jmp rel8` of the entry: `call rel32` to `hop`.
    var call: UInt64
    /// 6 bytes of padding elsewhere in the page: `push imm32; ret` to the stub.
    var hop: UInt64
    /// The displaced first instruction's length (at least 2).
    var displacedLength: Int

    /// (entry + displaced length) − (the address `call` pushes): the same in every process.
    var resumeDelta: Int32 { Int32(Int64(entry) + Int64(displacedLength) - Int64(call + 5)) }

    /// The bytes written at `entry`, `call` and `hop` for a stub at `stub` (in the top 2 GiB).
    func patches(stub: UInt64) -> (entry: [UInt8], call: [UInt8], hop: [UInt8]) {
        let toCall = Int8(Int64(call) - Int64(entry + 2))
        let toHop = Int32(Int64(hop) - Int64(call + 5))
        let low = UInt32(truncatingIfNeeded: stub)
        return ([0xEB, UInt8(bitPattern: toCall)],
                [0xE8] + withUnsafeBytes(of: toHop.littleEndian, Array.init),
                [0x68] + withUnsafeBytes(of: low.littleEndian, Array.init) + [0xC3])
    }
}

/// Finds the padding of one ELF file's code: byte ranges of an executable segment that no CFI row
/// covers and that hold nothing but no-op filler (the `nop` forms compilers align functions with,
/// or `int3`). Such bytes are never executed: they lie between one function's end and the next
/// one's start. Hands out placements, each padding byte at most once.
struct ExitlessPlanner: Sendable {
    /// Free filler, by file offset (start, end), ascending.
    private(set) var gaps: [(start: UInt64, end: UInt64)] = []

    /// `bytes` is the file's content, `segments` its executable `PT_LOAD` ranges (offset, size).
    init(bytes: [UInt8], segments: [(offset: UInt64, size: UInt64)], table: CallFrameTable) {
        for segment in segments {
            var position = segment.offset
            let end = min(segment.offset &+ segment.size, UInt64(bytes.count))
            for row in table.rows where row.end > segment.offset && row.start < end {
                if row.start > position { addGap(position, row.start, bytes) }
                position = max(position, row.end)
            }
            if end > position { addGap(position, end, bytes) }
        }
    }

    /// Keeps [start, end) if it is all no-op filler, decoded from `start` (where the code before
    /// it ends) to exactly `end` (where the next function starts).
    private mutating func addGap(_ start: UInt64, _ end: UInt64, _ bytes: [UInt8]) {
        guard end > start, end - start <= 4096, end <= UInt64(bytes.count) else { return }
        var offset = Int(start)
        while offset < Int(end) {
            guard let length = Self.fillerLength(bytes, at: offset), offset + length <= Int(end) else { return }
            offset += length
        }
        gaps.append((start, end))
    }

    /// Length of the no-op filler instruction at `offset` (`90`, `66 90`, `cc`, `[66…] [2e] 0f 1f /0`).
    static func fillerLength(_ bytes: [UInt8], at offset: Int) -> Int? {
        var i = offset
        guard i < bytes.count else { return nil }
        if bytes[i] == 0xCC || bytes[i] == 0x90 { return 1 }
        while i < bytes.count, bytes[i] == 0x66, i - offset < 8 { i += 1 }
        if i < bytes.count, bytes[i] == 0x2E { i += 1 }
        guard i < bytes.count else { return nil }
        if bytes[i] == 0x90, i > offset { return i + 1 - offset }
        guard i + 2 < bytes.count, bytes[i] == 0x0F, bytes[i + 1] == 0x1F else { return nil }
        let modrm = bytes[i + 2]
        guard (modrm >> 3) & 7 == 0 else { return nil }
        let mod = modrm >> 6, rm = modrm & 7
        var length = i + 3 - offset
        if mod == 3 { return length }
        if rm == 4 {
            guard i + 3 < bytes.count else { return nil }
            length += 1
            if mod == 0, bytes[i + 3] & 7 == 5 { length += 4 }
        }
        switch mod {
        case 0 where rm == 5: length += 4
        case 1: length += 1
        case 2: length += 4
        default: break
        }
        return offset + length <= bytes.count ? length : nil
    }

    /// A placement for the entry at `entry` whose first instruction is `displacedLength` bytes
    /// long, or nil when its page has no room (the entry then keeps its `int3`). The padding call
    /// goes in 5 bytes of a gap within reach of the entry's `jmp rel8` (the gap that ends at the
    /// entry first), the hop in 6 bytes of any gap of the page.
    mutating func place(entry: UInt64, displacedLength: Int) -> ExitlessPlacement? {
        let page = entry & ~0xFFF
        guard displacedLength >= 2, entry & 0xFFF <= 0xFFE else { return nil }
        let inPage = gaps.indices.filter { gaps[$0].start >= page && gaps[$0].end <= page + 4096 }
        // A call at `start` is reached from the entry's jmp rel8 (displacement from entry + 2).
        func reachable(_ start: UInt64) -> Bool {
            let displacement = Int64(start) - Int64(entry + 2)
            return displacement >= -128 && displacement <= 127
        }
        // The call: the last 5 bytes of the gap ending at the entry, else the first 5 of another gap in reach.
        var callGap: Int?, call: UInt64 = 0
        if let before = inPage.first(where: { gaps[$0].end == entry && gaps[$0].end - gaps[$0].start >= 5 }) {
            (callGap, call) = (before, entry - 5)
        } else if let other = inPage.first(where: { gaps[$0].end - gaps[$0].start >= 5 && reachable(gaps[$0].start) }) {
            (callGap, call) = (other, gaps[other].start)
        }
        guard let callGap else { return nil }
        // The hop: 6 bytes of a gap of the page, the call's own if it has room left.
        var hop: UInt64?
        for k in inPage {
            let gap = gaps[k]
            let room: (start: UInt64, end: UInt64) = k != callGap ? gap
                : call == gap.start ? (gap.start + 5, gap.end) : (gap.start, call)
            if room.end >= room.start + 6 {
                hop = room.start
                break
            }
        }
        guard let hop else { return nil }
        // Hand out the bytes: the call's, then the hop's.
        for (start, count) in [(call, UInt64(5)), (hop, UInt64(6))] {
            guard let k = gaps.firstIndex(where: { $0.start <= start && start + count <= $0.end }) else { return nil }
            let gap = gaps[k]
            gaps.remove(at: k)
            if start > gap.start { gaps.append((gap.start, start)) }
            if start + count < gap.end { gaps.append((start + count, gap.end)) }
        }
        gaps.sort { $0.start < $1.start }
        return ExitlessPlacement(entry: entry, call: call, hop: hop, displacedLength: displacedLength)
    }
}

extension CallFrameRow {
    var end: UInt64 { start &+ UInt64(length) }
}
