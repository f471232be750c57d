/// The layout of one block's kept references in a `BlockReferenceTable`: one array, so that the
/// marking touches one allocation per block.
///
///     [0]  hit count h (low 32 bits) and dependency count d (high 32 bits)
///     [1]  the latest write the write history knew of the block's frames when it was read (0: none;
///          `notPresent`: not looked up yet)
///     h pairs: the pointer's value, then its target block << 1 | 1 when it points at the start
///     d pairs: the frame a page of the block maps to (`notPresent`: none), then the page-table
///              frame holding that page's entry
///     the rest: candidate words that hit no block (a block allocated later may hold them)
enum BlockReferences {
    static let notPresent = UInt64.max

    static func make(hits: [UInt64], dependencies: [UInt64], misses: [UInt64]) -> [UInt64] {
        var words: [UInt64] = []
        words.reserveCapacity(2 + hits.count + dependencies.count + misses.count)
        words.append(UInt64(hits.count / 2) | UInt64(dependencies.count / 2) << 32)
        words.append(notPresent)
        words += hits
        words += dependencies
        words += misses
        return words
    }

    /// Calls `body` with the hits (pairs), dependencies (pairs) and misses.
    static func withLayout(_ words: [UInt64], _ body: (ArraySlice<UInt64>, ArraySlice<UInt64>, ArraySlice<UInt64>) -> Void) {
        let h = Int(words[0] & 0xFFFF_FFFF) * 2, d = Int(words[0] >> 32) * 2
        body(words[2..<2 + h], words[2 + h..<2 + h + d], words[(2 + h + d)...])
    }

    /// Calls `body` with each hit's value, target block and whether it points at the start.
    @inline(__always)
    static func forEachHit(_ words: [UInt64], _ body: (UInt64, Int, Bool) -> Void) {
        let h = Int(words[0] & 0xFFFF_FFFF)
        var k = 2
        for _ in 0..<h {
            let target = words[k + 1]
            body(words[k], Int(target >> 1), target & 1 != 0)
            k += 2
        }
    }

    static func forEachDependency(_ words: [UInt64], _ body: (UInt64, UInt64) -> Void) {
        let h = Int(words[0] & 0xFFFF_FFFF), d = Int(words[0] >> 32)
        var k = 2 + 2 * h
        for _ in 0..<d {
            body(words[k], words[k + 1])
            k += 2
        }
    }

    /// The dependencies (pairs), for comparing with a fresh translation.
    static func dependencies(_ words: [UInt64]) -> ArraySlice<UInt64> {
        let h = Int(words[0] & 0xFFFF_FFFF) * 2, d = Int(words[0] >> 32) * 2
        return words[2 + h..<2 + h + d]
    }

    static func lastWrite(_ words: [UInt64]) -> UInt64 { words[1] }
    static func setLastWrite(_ words: inout [UInt64], _ time: UInt64) { words[1] = time }

    /// Renumbers the hits' targets (the index was rebuilt).
    static func retarget(_ words: inout [UInt64], _ newIndex: (UInt64) -> UInt64) {
        let h = Int(words[0] & 0xFFFF_FFFF)
        var k = 3
        for _ in 0..<h {
            words[k] = newIndex(words[k] >> 1) << 1 | words[k] & 1
            k += 2
        }
    }
}
