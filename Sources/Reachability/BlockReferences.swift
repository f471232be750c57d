/// The layout of one block's entry in a `BlockReferenceTable`'s words:
///
///     [0]  hit count h (low 32 bits) and dependency count d (high 32 bits)
///     [1]  the latest write the write history knew of the block's frames when it was read
///          (`notLookedUp` until asked)
///     [2]  miss count m
///     h pairs: the pointer's value, then its target block << 1 | 1 when it points at the start
///     d pairs: the frame a page of the block maps to (`notPresent`: none), then the page-table
///              frame holding that page's entry
///     m words: candidate words that hit no block (a block allocated later may hold them)
enum BlockReferences {
    static let notPresent = UInt64.max
    static let notLookedUp = UInt64.max
    /// Words before the hits: the counts, the last write, the miss count.
    static let header = 3

    static func append(to words: inout [UInt64], hits: [UInt64], dependencies: [UInt64], misses: [UInt64]) {
        words.append(UInt64(hits.count / 2) | UInt64(dependencies.count / 2) << 32)
        words.append(notLookedUp)
        words.append(UInt64(misses.count))
        words += hits
        words += dependencies
        words += misses
    }

    /// Hit and dependency counts (pairs) of the entry at `offset`.
    @inline(__always)
    static func counts(in words: [UInt64], at offset: Int) -> (hits: Int, dependencies: Int) {
        (Int(words[offset] & 0xFFFF_FFFF), Int(words[offset] >> 32))
    }

    /// Words the entry at `offset` takes.
    static func length(in words: [UInt64], at offset: Int) -> Int {
        let (h, d) = counts(in: words, at: offset)
        return header + 2 * h + 2 * d + Int(words[offset + 2])
    }

    static func entry(in words: [UInt64], at offset: Int) -> ArraySlice<UInt64> {
        words[offset..<offset + length(in: words, at: offset)]
    }

    /// Where the hits of the entry at `offset` start.
    @inline(__always)
    static func hitsStart(_ offset: Int) -> Int { offset + header }

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
