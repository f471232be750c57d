import AllocationLedger
import Reachability

/// One address space's verdicts as of its last scan, kept so that a rescan changes only the
/// entries of blocks whose verdict changed instead of building them all again.
struct SpaceVerdicts: Sendable {
    /// The ledger version and block index (with allocation times) `perBlock` is aligned with.
    private var version: UInt64?
    private var index = HeapBlockIndex(blocks: [])
    private var times: [UInt64] = []
    private var perBlock: [BlockVerdict?] = []
    /// The verdicts by block start, as the last `update` returned them.
    private(set) var byAddress: [UInt64: BlockVerdict] = [:]
    /// The map the `update` before the last returned, and the changes it lacks: whoever kept it
    /// (the ledger) has let it go for `byAddress` since, so the next update changes it in place
    /// instead of copying all of `byAddress` (a copy of every verdict per rescan).
    private var spare: [UInt64: BlockVerdict]?
    private var spareLacks: [(UInt64, BlockVerdict?)] = []
    /// What the last `update` changed in `byAddress` (nil: unknown, the map was made anew), and the
    /// time of the scan that returned the map before it.
    private var lastChanges: [(UInt64, BlockVerdict?)]?
    private var scanTime: UInt64?

    /// The verdicts of `result` over `table`'s index: each classified block's class, and when its
    /// pages were last written (the latest harvest that saw any of them written, at least its
    /// allocation time; without a write history, or when its pages could not be found: `now`, never
    /// stale). Blocks an incomplete scan did not classify get no verdict.
    /// `frames` gives the frames of a block without an entry (nil: unknown). With `revisiting`, the
    /// result is the one the last update had and only those blocks' verdicts may have changed.
    mutating func update(_ table: inout BlockReferenceTable, _ result: ReachabilityResult, frames: (Range<UInt64>) -> [UInt64]?,
                         history: PageWriteHistory?, now: UInt64, revisiting: [Int]? = nil) -> [UInt64: BlockVerdict] {
        let index = table.index
        var changes: [(UInt64, BlockVerdict?)] = []
        var known = true
        var revisiting = revisiting
        if version == nil || version != table.version || perBlock.count != index.count {
            (changes, known) = follow(table)
            revisiting = nil
        }
        defer { lastChanges = known ? changes : nil }
        func visit(_ i: Int) {
            let verdict = Self.verdict(of: i, &table, result, frames: frames, history: history, now: now)
            guard verdict != perBlock[i] else { return }
            perBlock[i] = verdict
            changes.append((index.starts[i], verdict))
        }
        if let revisiting {
            for i in revisiting { visit(i) }
        } else {
            for i in 0..<index.count { visit(i) }
        }
        guard !changes.isEmpty else { return byAddress }
        var next: [UInt64: BlockVerdict]
        if spare != nil {
            // Moved out (no binding left holding it), so that it is changed in place.
            next = spare!
            spare = nil
            for (start, verdict) in spareLacks { next[start] = verdict }
        } else {
            next = byAddress
        }
        for (start, verdict) in changes { next[start] = verdict }
        // A spare that lacks most of the map is no cheaper than a copy.
        (spare, spareLacks) = changes.count * 4 <= next.count ? (byAddress, changes) : (nil, [])
        byAddress = next
        return byAddress
    }

    /// Aligns the kept verdicts with `table`'s index: a block still there (same start, size and
    /// allocation time) keeps its verdict until it is computed again; the verdicts of blocks that
    /// are gone leave the map: returned as removals.
    private mutating func follow(_ table: BlockReferenceTable) -> (removed: [(UInt64, BlockVerdict?)], known: Bool) {
        let (old, oldTimes, oldVerdicts) = (index, times, perBlock)
        index = table.index
        times = table.times
        version = table.version
        perBlock = [BlockVerdict?](repeating: nil, count: index.count)
        guard oldVerdicts.count == old.count, !oldVerdicts.isEmpty else {
            (byAddress, spare, spareLacks) = ([:], nil, [])
            byAddress.reserveCapacity(index.count)
            return ([], false)
        }
        var removed: [(UInt64, BlockVerdict?)] = []
        for (i, j) in index.survivors(of: old, olderTimes: oldTimes, times: times).enumerated() {
            if j >= 0 { perBlock[j] = oldVerdicts[i] } else { removed.append((old.starts[i], nil)) }
        }
        return (removed, true)
    }

    /// The last `update`'s changes as `VerdictChanges` against the previous scan this returned a
    /// map for (nil when unknown), noting `time` as the time of the scan that returns this one.
    mutating func changes(forScanAt time: UInt64) -> VerdictChanges? {
        defer { scanTime = time }
        guard let base = scanTime, let lastChanges else { return nil }
        return VerdictChanges(baseTime: base, changes: lastChanges.map { (address: $0.0, verdict: $0.1) })
    }

    static func verdict(of i: Int, _ table: inout BlockReferenceTable, _ result: ReachabilityResult,
                        frames: (Range<UInt64>) -> [UInt64]?, history: PageWriteHistory?, now: UInt64) -> BlockVerdict? {
        guard let reachability = result.classes[i] else { return nil }
        let index = table.index
        let start = index.starts[i]
        var written = table.times[i]
        if let history, let last = table.lastWrite(of: i, history: history) {
            written = max(written, last)
        } else if let history, let frames = frames(start..<max(index.end(of: i), start.addingSaturated(1))) {
            for frame in frames { written = max(written, history.lastWrite(of: frame) ?? 0) }
        } else {
            written = now
        }
        let leader = result.leaders[i] >= 0 ? index.starts[result.leaders[i]] : nil
        let via = reachability == .reachable && i < result.viaHeuristic.count ? result.viaHeuristic[i] : nil
        return BlockVerdict(reachability: reachability, leader: leader, indirectBytes: result.indirectBytes[i],
                            lastWritten: written, viaHeuristic: via)
    }
}
