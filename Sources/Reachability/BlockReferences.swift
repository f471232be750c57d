/// The layout of one block's entry in a `BlockReferenceTable`'s words:
///
///     [0]  hit count h (low 32 bits) and dependency count d (high 32 bits)
///     [1]  the latest write the write history knew of the block's frames when it was read
///          (`notLookedUp` until asked)
///     [2]  miss count m
///     [3]  the block's heuristic facts (`BlockFacts`): bit 0 set when known, bit 1 when its first
///          word is known, bit 2 when its second is, vtable slot count v in the high 32 bits
///     [4]  the block's first word, [5] its second (0 when unknown)
///     h pairs: the pointer's value, then its target block << 1 | 1 when it points at the start
///     d pairs: the frame a page of the block maps to (`notPresent`: none), then the page-table
///              frame holding that page's entry
///     m words: candidate words that hit no block (a block allocated later may hold them)
///     v pairs: a slot's offset in the block, then its word, for the words that may be vtable
///              pointers
enum BlockReferences {
    static let notPresent = UInt64.max
    static let notLookedUp = UInt64.max
    /// Words before the hits: the counts, the last write, the miss count, the facts.
    static let header = 6

    static func append(to words: inout [UInt64], hits: [UInt64], dependencies: [UInt64], misses: [UInt64],
                       facts: BlockFacts? = nil) {
        words.append(UInt64(hits.count / 2) | UInt64(dependencies.count / 2) << 32)
        words.append(notLookedUp)
        words.append(UInt64(misses.count))
        if let facts {
            words.append(1 | (facts.first != nil ? 2 : 0) | (facts.second != nil ? 4 : 0) | UInt64(facts.vtableSlots.count / 2) << 32)
            words.append(facts.first ?? 0)
            words.append(facts.second ?? 0)
        } else {
            words += [0, 0, 0]
        }
        words += hits
        words += dependencies
        words += misses
        if let facts { words += facts.vtableSlots }
    }

    /// The facts of the entry at `offset`, if they were recorded.
    static func facts(in words: [UInt64], at offset: Int) -> BlockFacts? {
        let flags = words[offset + 3]
        guard flags & 1 != 0 else { return nil }
        let length = length(in: words, at: offset), slots = 2 * Int(flags >> 32)
        return BlockFacts(first: flags & 2 != 0 ? words[offset + 4] : nil, second: flags & 4 != 0 ? words[offset + 5] : nil,
                          vtableSlots: Array(words[offset + length - slots..<offset + length]))
    }

    /// The word at byte `k` of the block of the entry at `offset` as its facts know it: its first
    /// or second word, or a word that may be a vtable pointer; nil when the facts do not hold it
    /// (then it is no vtable pointer) or there are none (`known` false).
    static func factWord(in words: [UInt64], at offset: Int, byte k: UInt64) -> (known: Bool, word: UInt64?) {
        let flags = words[offset + 3]
        guard flags & 1 != 0 else { return (false, nil) }
        if k == 0 { return (true, flags & 2 != 0 ? words[offset + 4] : nil) }
        if k == 8 { return (true, flags & 4 != 0 ? words[offset + 5] : nil) }
        let length = length(in: words, at: offset), count = Int(flags >> 32)
        var low = 0, high = count
        let first = offset + length - 2 * count
        while low < high {
            let mid = (low + high) / 2
            if words[first + 2 * mid] < k { low = mid + 1 } else { high = mid }
        }
        return (true, low < count && words[first + 2 * low] == k ? words[first + 2 * low + 1] : nil)
    }

    /// Hit and dependency counts (pairs) of the entry at `offset`.
    @inline(__always)
    static func counts(in words: [UInt64], at offset: Int) -> (hits: Int, dependencies: Int) {
        (Int(words[offset] & 0xFFFF_FFFF), Int(words[offset] >> 32))
    }

    /// Words the entry at `offset` takes.
    static func length(in words: [UInt64], at offset: Int) -> Int {
        let (h, d) = counts(in: words, at: offset)
        return header + 2 * h + 2 * d + Int(words[offset + 2]) + 2 * Int(words[offset + 3] >> 32)
    }

    static func entry(in words: [UInt64], at offset: Int) -> ArraySlice<UInt64> {
        words[offset..<offset + length(in: words, at: offset)]
    }

    /// Where the hits of the entry at `offset` start.
    @inline(__always)
    static func hitsStart(_ offset: Int) -> Int { offset + header }

    /// The hit pairs of the entry at `offset`.
    static func hits(in words: [UInt64], at offset: Int) -> ArraySlice<UInt64> {
        let start = hitsStart(offset)
        return words[start..<start + 2 * counts(in: words, at: offset).hits]
    }

    static func dependencies(in words: [UInt64], at offset: Int) -> ArraySlice<UInt64> {
        let (h, d) = counts(in: words, at: offset)
        let start = offset + header + 2 * h
        return words[start..<start + 2 * d]
    }

    static func misses(in words: [UInt64], at offset: Int) -> ArraySlice<UInt64> {
        let (h, d) = counts(in: words, at: offset)
        let start = offset + header + 2 * h + 2 * d
        return words[start..<start + Int(words[offset + 2])]
    }

    static func forEachDependency(in words: [UInt64], at offset: Int, _ body: (UInt64, UInt64) -> Void) {
        let pairs = dependencies(in: words, at: offset)
        var k = pairs.startIndex
        while k < pairs.endIndex {
            body(pairs[k], pairs[k + 1])
            k += 2
        }
    }

    /// Renumbers the hits' targets of the entry at `offset` (the index was rebuilt).
    static func retarget(_ words: inout [UInt64], at offset: Int, _ newIndex: (Int) -> Int) {
        let h = counts(in: words, at: offset).hits
        var k = hitsStart(offset) + 1
        for _ in 0..<h {
            words[k] = UInt64(newIndex(Int(words[k] >> 1))) << 1 | words[k] & 1
            k += 2
        }
    }
}

/// What the leak-check heuristics read of a block, recorded with its references so that an
/// interior pointer to it can be judged without reading guest memory again: its first two words
/// (nil: not wholly in the block, or unreadable) and, in slot order, each slot whose word may be
/// a vtable pointer (offset in the block, then the word).
public struct BlockFacts: Sendable, Equatable {
    public var first: UInt64?
    public var second: UInt64?
    public var vtableSlots: [UInt64]

    public init(first: UInt64?, second: UInt64?, vtableSlots: [UInt64] = []) {
        (self.first, self.second, self.vtableSlots) = (first, second, vtableSlots)
    }
}
