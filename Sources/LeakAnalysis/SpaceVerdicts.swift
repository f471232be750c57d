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
    private(set) var byAddress: [UInt64: BlockVerdict] = [:]

    /// The verdicts of `result` over `table`'s index: each classified block's class, and when its
    /// pages were last written (the latest harvest that saw any of them written, at least its
    /// allocation time; without a write history, or when its pages could not be found: `now`, never
    /// stale). Blocks an incomplete scan did not classify get no verdict.
    /// `frames` gives the frames of a block without an entry (nil: unknown).
    mutating func update(_ table: inout BlockReferenceTable, _ result: ReachabilityResult, frames: (Range<UInt64>) -> [UInt64]?,
                         history: PageWriteHistory?, now: UInt64) -> [UInt64: BlockVerdict] {
        let index = table.index
        if version == nil || version != table.version || perBlock.count != index.count {
            follow(table)
        }
        for i in 0..<index.count {
            let verdict = Self.verdict(of: i, &table, result, frames: frames, history: history, now: now)
            guard verdict != perBlock[i] else { continue }
            perBlock[i] = verdict
            byAddress[index.starts[i]] = verdict
        }
        return byAddress
    }

    /// Aligns the kept verdicts with `table`'s index: a block still there (same start, size and
    /// allocation time) keeps its verdict until it is computed again; the verdicts of blocks that
    /// are gone leave the map.
    private mutating func follow(_ table: BlockReferenceTable) {
        let (old, oldTimes, oldVerdicts) = (index, times, perBlock)
        index = table.index
        times = table.times
        version = table.version
        perBlock = [BlockVerdict?](repeating: nil, count: index.count)
        guard oldVerdicts.count == old.count, !oldVerdicts.isEmpty else {
            byAddress = [:]
            byAddress.reserveCapacity(index.count)
            return
        }
        for (i, j) in index.survivors(of: old, olderTimes: oldTimes, times: times).enumerated() {
            if j >= 0 { perBlock[j] = oldVerdicts[i] } else { byAddress[old.starts[i]] = nil }
        }
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
