/// A complete marking kept with the table it was made over, so that a rescan whose inputs did not
/// change takes its result instead of marking every block again.
///
/// A marking is a function of the block index, the roots' hits, the heuristics, every block's
/// hits and the facts of the blocks the heuristics judged. While the index stays, the table
/// notes each entry the marking used that is dropped (`retired`); when the block's entry is made
/// again it is compared with the one the marking used: other hits, or other facts for a block
/// the heuristics judged, and the marking is stale (`changed`).
struct KeptMarking: Sendable {
    let result: ReachabilityResult
    /// The root words that hit a block, in the order the marking took them.
    let rootHits: [UInt64]
    let heuristics: LeakCheckHeuristics
    /// Blocks whose facts the heuristics judged in that marking.
    let judged: Set<Int>
    /// Block → where the entry the marking used starts in `words`, for entries dropped since.
    var retired: [Int: Int] = [:]
    /// Whether an entry made since differs from the one the marking used where it matters.
    var changed = false

    /// Bytes the kept result takes (per block: class, leader, indirect bytes, heuristic).
    var storedBytes: UInt64 { UInt64(result.classes.count) * 18 + UInt64(retired.count + judged.count) * 24 }
}

extension BlockReferenceTable {
    /// Keeps `result`, a complete marking of this table's index from roots whose words that hit a
    /// block are `rootHits` (`rootHits(of:)`), under `heuristics`, for `reusableMarking`.
    public mutating func keepMarking(_ result: ReachabilityResult, rootHits: [UInt64], heuristics: LeakCheckHeuristics) {
        guard keeps, result.complete, result.classes.count == index.count else {
            keptMarking = nil
            return
        }
        keptMarking = KeptMarking(result: result, rootHits: rootHits, heuristics: heuristics,
                                  judged: Set(result.judgedBlocks))
    }

    /// Forgets the kept marking (a marking whose inputs cannot be compared ran since).
    public mutating func forgetMarking() { keptMarking = nil }

    /// The kept marking's result when a marking from roots whose hits are `rootHits` under
    /// `heuristics` would give it again: same index (the table's), same roots' hits and
    /// heuristics, every block with a trusted entry, and no entry made since that differs where it matters. Also returns the
    /// blocks whose entries were made again since (their pages were written: their verdicts' write
    /// times may have changed). Nil when it must be marked.
    public func reusableMarking(rootHits: [UInt64], heuristics: LeakCheckHeuristics) -> (result: ReachabilityResult, remade: [Int])? {
        guard let kept = keptMarking, !kept.changed, kept.heuristics == heuristics, kept.result.classes.count == index.count,
              kept.rootHits == rootHits, everyEntryTrusted(withFacts: false) else { return nil }
        return (kept.result, kept.retired.keys.sorted())
    }

    /// Compares block `b`'s entry, just made, with the one a kept marking used (at `usedEntry`).
    mutating func compareWithMarked(_ b: Int, usedEntry: Int, facts: BlockFacts?) {
        guard let kept = keptMarking, !kept.changed, let now = trustedEntry(b) else { return }
        let used = BlockReferences.hits(in: words, at: usedEntry), made = BlockReferences.hits(in: words, at: now)
        if !used.elementsEqual(made) || (kept.judged.contains(b) && BlockReferences.facts(in: words, at: usedEntry) != facts) {
            keptMarking?.changed = true
        }
    }

    /// The words of `rootWords` that hit a block of the index, in their order.
    public func rootHits(of rootWords: [UInt64]) -> [UInt64] {
        rootWords.filter { span.contains($0) && index.block(containing: $0) != nil }
    }
}
