import DebugInfo

/// Where the jumps of one exitless entry go in its file (file offsets, all in the entry's page,
/// so that the page cache holds all or none of them): the entry's `jmp rel8`, as many 2-byte
/// `jmp rel8` hops through padding as it takes to reach 5 bytes of padding for the `call rel32`
/// (none when there is room right before the entry), and the `push imm32; ret` hop to the stub
/// in 6 bytes of padding anywhere in the page.
struct ExitlessPlacement: Sendable, Equatable {
    /// The allocator's first byte (2 bytes written: `jmp rel8` to the first hop or the call).
    var entry: UInt64
    /// 2-byte `jmp rel8` hops in padding, in the order they are taken.
    var hops: [UInt64] = []
    /// 5 bytes of padding: `call rel32` to `push`.
    var call: UInt64
    /// 6 bytes of padding: `push imm32; ret` to the stub.
    var push: UInt64
    /// The displaced instructions' length (at least 2; at least 5 when the call is at the entry).
    var displacedLength: Int

    /// The `call rel32` is written over the entry itself (no padding was in a `jmp rel8`'s reach).
    var callAtEntry: Bool { call == entry }

    /// (entry + displaced length) − (the address `call` pushes): the same in every process.
    var resumeDelta: Int32 { Int32(Int64(entry) + Int64(displacedLength) - Int64(call + 5)) }

    /// The bytes written for a stub at `stub` (in the top 2 GiB), each run with its file offset:
    /// the entry's first, then the hops, the call and the push, in the order a thread takes them.
    func runs(stub: UInt64) -> [(offset: UInt64, bytes: [UInt8])] {
        let jumps = call == entry ? [] : [entry] + hops
        let targets = hops + [call]
        var runs = zip(jumps, targets).map { from, to in (offset: from, bytes: [0xEB, UInt8(bitPattern: Int8(Int64(to) - Int64(from + 2)))]) }
        let toPush = Int32(Int64(push) - Int64(call + 5))
        runs.append((call, [0xE8] + withUnsafeBytes(of: toPush.littleEndian, Array.init)))
        runs.append((push, [0x68] + withUnsafeBytes(of: UInt32(truncatingIfNeeded: stub).littleEndian, Array.init) + [0xC3]))
        return runs
    }
}

/// Finds the padding of one ELF file's code: byte ranges of an executable segment that no CFI row
/// covers and that hold nothing but no-op filler (the `nop` forms compilers align functions with,
/// or `int3`). Such bytes are never executed: they lie between one function's end and the next
/// one's start. Hands out placements, each padding byte at most once.
struct ExitlessPlanner: Sendable {
    /// Free filler, by file offset (start, end), ascending.
    private(set) var gaps: [(start: UInt64, end: UInt64)] = []
    /// Code covered by CFI rows without a gap (a function, or several back to back), ascending.
    private(set) var covered: [(start: UInt64, end: UInt64)] = []

    /// `bytes` is the file's content, `segments` its executable `PT_LOAD` ranges (offset, size).
    init(bytes: [UInt8], segments: [(offset: UInt64, size: UInt64)], table: CallFrameTable) {
        for segment in segments {
            var position = segment.offset
            let end = min(segment.offset &+ segment.size, UInt64(bytes.count))
            for row in table.rows where row.end > segment.offset && row.start < end {
                if row.start > position { addGap(position, row.start, bytes) }
                if let last = covered.last, last.end == row.start { covered[covered.count - 1].end = row.end } else { covered.append((row.start, row.end)) }
                position = max(position, row.end)
            }
            if end > position { addGap(position, end, bytes) }
        }
    }

    /// Whether a direct branch (`jmp`, `jcc`, `call`, `loop`, `jrcxz`, 8- or 32-bit displacement)
    /// may target `target`: every byte offset of the code around it (the CFI-covered run it lies
    /// in, at most 64 KiB, and the 128 bytes before it) is read as if an instruction started
    /// there. A false alarm only keeps an entry on its `int3`. Used before the entry's `jmp rel8`
    /// covers a second instruction (whose start must then be no branch target).
    func mayBranch(to target: UInt64, in bytes: [UInt8]) -> Bool {
        guard let run = covered.first(where: { $0.start < target && target < $0.end }) else { return true }
        let from = max(run.start, target >= 128 ? target - 128 : 0), to = min(run.end, run.start + 65_536, UInt64(bytes.count))
        return (Int(from)..<Int(to)).contains { Self.directBranchTarget(bytes, at: $0) == Int64(target) }
    }

    /// Where a direct branch (`jmp`, `jcc`, `call`, `loop`, `jrcxz`, 8- or 32-bit displacement)
    /// read at `index` of `bytes` goes, as a file offset (`bytes` starts at file offset `base`);
    /// nil when no such opcode is there.
    static func directBranchTarget(_ bytes: [UInt8], at index: Int, base: UInt64 = 0) -> Int64? {
        func rel8(_ length: Int) -> Int64? {
            index + length <= bytes.count ? Int64(base) + Int64(index + length) + Int64(Int8(bitPattern: bytes[index + length - 1])) : nil
        }
        func rel32(_ length: Int) -> Int64? {
            guard index + length <= bytes.count else { return nil }
            var value: UInt32 = 0
            for k in 0..<4 { value |= UInt32(bytes[index + length - 4 + k]) << (8 * k) }
            return Int64(base) + Int64(index + length) + Int64(Int32(bitPattern: value))
        }
        switch bytes[index] {
        case 0xEB, 0x70...0x7F, 0xE0...0xE3: return rel8(2)
        case 0xE8, 0xE9: return rel32(5)
        case 0x0F where index + 1 < bytes.count && (0x80...0x8F).contains(bytes[index + 1]): return rel32(6)
        default: return nil
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
    /// long, or nil when its page has no room (the entry then keeps its `int3`). The call goes in
    /// the last 5 bytes of the padding that ends at the entry when there are 5; else a
    /// breadth-first search over the page's padding finds the fewest `jmp rel8` hops (2 bytes at
    /// the start of a padding run each) to a run with 5 bytes for the call. The push goes in 6
    /// bytes of any padding left in the page.
    mutating func place(entry: UInt64, displacedLength: Int) -> ExitlessPlacement? {
        let page = entry & ~0xFFF
        guard displacedLength >= 2, entry & 0xFFF <= 0xFFE else { return nil }
        let inPage = gaps.indices.filter { gaps[$0].start >= page && gaps[$0].end <= page + 4096 }
        func reach(_ from: UInt64, _ to: UInt64) -> Bool {
            let displacement = Int64(to) - Int64(from + 2)
            return displacement >= -128 && displacement <= 127
        }
        func length(_ k: Int) -> UInt64 { gaps[k].end - gaps[k].start }
        var hops: [UInt64] = []
        var call: UInt64
        if let before = inPage.first(where: { gaps[$0].end == entry && length($0) >= 5 }) {
            call = gaps[before].end - 5
        } else {
            // Breadth-first from the entry's jump: a node is a padding run (its start), reached
            // by a 2-byte jump; the goal is a run of 5 bytes or more.
            var previous: [Int: Int] = [:]       // run → the run it was reached from (-1: the entry)
            var frontier: [(run: Int, at: UInt64)] = [(-1, entry)]
            var goal: Int?
            search: while !frontier.isEmpty {
                var next: [(run: Int, at: UInt64)] = []
                for node in frontier {
                    for k in inPage where previous[k] == nil && reach(node.at, gaps[k].start) {
                        previous[k] = node.run
                        if length(k) >= 5 { goal = k; break search }
                        if length(k) >= 2 { next.append((k, gaps[k].start)) }
                    }
                }
                frontier = next
            }
            guard let goal else { return nil }
            call = gaps[goal].start
            var run = previous[goal] ?? -1
            while run >= 0 {
                hops.insert(gaps[run].start, at: 0)
                run = previous[run] ?? -1
            }
        }
        // Hand out the bytes: the hops', the call's, then the push's from what is left.
        var taken: [(UInt64, UInt64)] = hops.map { ($0, 2) } + [(call, 5)]
        for (start, count) in taken where !take(start, count) { return nil }
        guard let room = gaps.first(where: { $0.start >= page && $0.end <= page + 4096 && $0.end - $0.start >= 6 }) else {
            for (start, count) in taken { gaps.append((start, start + count)) }
            gaps.sort { $0.start < $1.start }
            return nil
        }
        let push = room.start
        taken.append((push, 6))
        _ = take(push, 6)
        return ExitlessPlacement(entry: entry, hops: hops, call: call, push: push, displacedLength: displacedLength)
    }

    /// A placement with the `call rel32` over the entry's first `displacedLength` (≥ 5) bytes and
    /// the push in 6 bytes of padding in the entry's page; nil when there is none.
    mutating func placeCall(entry: UInt64, displacedLength: Int) -> ExitlessPlacement? {
        let page = entry & ~0xFFF
        guard displacedLength >= 5, entry & 0xFFF <= 4096 - 5,
              let room = gaps.first(where: { $0.start >= page && $0.end <= page + 4096 && $0.end - $0.start >= 6 }),
              take(room.start, 6) else { return nil }
        return ExitlessPlacement(entry: entry, call: entry, push: room.start, displacedLength: displacedLength)
    }

    /// Removes [start, start + count) from the free padding; false if it is not free.
    private mutating func take(_ start: UInt64, _ count: UInt64) -> Bool {
        guard let k = gaps.firstIndex(where: { $0.start <= start && start + count <= $0.end }) else { return false }
        let gap = gaps[k]
        gaps.remove(at: k)
        if start > gap.start { gaps.append((gap.start, start)) }
        if start + count < gap.end { gaps.append((start + count, gap.end)) }
        gaps.sort { $0.start < $1.start }
        return true
    }
}

extension CallFrameRow {
    var end: UInt64 { start &+ UInt64(length) }
}
