import DebugInfo

/// What each live block of one address space points at, resolved against the space's block index
/// and kept between scans, so that a rescan resolves again only the blocks whose memory, whose
/// translation or whose targets changed (see docs/reachability.md, *Incremental scans*).
///
/// An entry is derived from the guest-physical frames the block's pages map to and from the page
/// tables that map them (its *dependencies*). It is dropped when one of its frames is written, and
/// its translation is checked again when one of its tables (or any upper-level table the space's
/// walks went through) is written. When the ledger's blocks change, entries are carried over to
/// the new index only when none of their values can resolve differently there.
///
/// Not thread-safe: its owner uses it under a lock of its own.
// SAFETY: @unchecked because its arrays and maps are mutated without a lock of its own; every use
// goes through one owner at a time (`ReachabilityScanner` inside its `Mutex`, tests from one thread).
public final class BlockReferenceTable: @unchecked Sendable {
    /// The index the entries are resolved against, and the ledger version it was built from.
    public private(set) var index: HeapBlockIndex
    public private(set) var version: UInt64?
    /// Allocation time of each block (a freed and reallocated block is another block).
    public private(set) var times: [UInt64]
    /// Per block: nil, or its references (`BlockReferences` layout).
    private var entries: [[UInt64]?]
    /// Blocks whose translation must be checked before their entry is trusted again.
    private var suspect: [Bool]
    /// Data frame → blocks whose entry read it; table frame → blocks whose pages it maps.
    private var byFrame: [UInt64: [Int32]] = [:]
    private var byTable: [UInt64: [Int32]] = [:]
    /// Upper-level table frames (above the leaf entries) the space's walks went through.
    private var upperTables: Set<UInt64> = []
    public private(set) var storedBytes: UInt64 = 0
    /// Entries used as kept and entries resolved, since `resetCounters`.
    public private(set) var blocksReused = 0
    public private(set) var blocksResolved = 0

    public init() {
        index = HeapBlockIndex(blocks: [])
        times = []
        entries = []
        suspect = []
    }

    /// Makes `blocks` (start, size, allocation time; any order) the index, unless `version` says the
    /// ledger has not changed since the current one was built. Entries of blocks that are still
    /// there (same start, size and time) are kept when none of their values falls in a block that
    /// is new (so it resolves as before) and none of their targets is gone; the others are dropped.
    public func update(blocks: [(start: UInt64, size: UInt64, time: UInt64)], version: UInt64) {
        guard version != self.version else { return }
        let sorted = blocks.sorted { $0.start < $1.start }
        let newIndex = HeapBlockIndex(blocks: sorted.map { ($0.start, $0.size) })
        let newTimes = sorted.map(\.time)
        let old = (index: index, times: times, entries: entries, suspect: suspect)
        index = newIndex
        times = newTimes
        self.version = version
        entries = [[UInt64]?](repeating: nil, count: newIndex.count)
        suspect = [Bool](repeating: false, count: newIndex.count)
        byFrame = [:]
        byTable = [:]
        storedBytes = 0
        guard !old.entries.isEmpty, !newIndex.hasOverlaps else { return }
        // Old block → new block, for the blocks still there; and the new blocks' ranges, sorted.
        var map = [Int32](repeating: -1, count: old.index.count)
        var added: [Range<UInt64>] = []
        var i = 0
        for j in 0..<newIndex.count {
            let start = newIndex.starts[j]
            while i < old.index.count, old.index.starts[i] < start { i += 1 }
            if i < old.index.count, old.index.starts[i] == start, old.index.sizes[i] == newIndex.sizes[j], old.times[i] == newTimes[j] {
                map[i] = Int32(j)
            } else {
                added.append(newIndex.range(of: j))
            }
        }
        func inAdded(_ value: UInt64) -> Bool {
            let k = partitionPoint(count: added.count) { added[$0].upperBound <= value }
            return k < added.count && added[k].contains(value)
        }
        for (o, entry) in old.entries.enumerated() {
            guard var words = entry, map[o] >= 0 else { continue }
            var keep = true
            BlockReferences.withLayout(words) { hits, _, misses in
                for k in stride(from: hits.startIndex, to: hits.endIndex, by: 2) where map[Int(hits[k + 1] >> 1)] < 0 || inAdded(hits[k]) {
                    keep = false
                    return
                }
                for value in misses where inAdded(value) {
                    keep = false
                    return
                }
            }
            guard keep else { continue }
            BlockReferences.retarget(&words) { UInt64(map[Int($0)]) }
            store(words, for: Int(map[o]))
            suspect[Int(map[o])] = old.suspect[o]
        }
    }

    /// The kept references of block `b`, or nil when it has none that can be trusted without a check.
    func entry(_ b: Int) -> [UInt64]? { suspect[b] ? nil : entries[b] }

    /// The kept references of block `b` whose translation must be checked first, if any.
    func suspectEntry(_ b: Int) -> [UInt64]? { suspect[b] ? entries[b] : nil }

    /// Keeps block `b`'s references (`BlockReferences` layout).
    func store(_ words: [UInt64], for b: Int) {
        if let old = entries[b] { storedBytes -= Self.bytes(of: old) }
        entries[b] = words
        suspect[b] = false
        storedBytes += Self.bytes(of: words)
        let block = Int32(b)
        BlockReferences.forEachDependency(words) { frame, table in
            if frame != BlockReferences.notPresent { byFrame[frame, default: []].append(block) }
            byTable[table, default: []].append(block)
        }
    }

    /// A suspect entry whose translation was found unchanged.
    func confirm(_ b: Int) { suspect[b] = false }

    func countReuse() { blocksReused += 1 }
    func countResolution() { blocksResolved += 1 }

    /// Adds upper-level tables that walks of this space went through.
    public func noteUpperTables(_ tables: Set<UInt64>) { upperTables.formUnion(tables) }

    /// Frames that were written: entries that read them are dropped, entries mapped by them are
    /// checked again before use (all of them when an upper-level table was written). Returns the
    /// written frames that dropped entries had read (worth reading again before the next scan).
    @discardableResult
    public func invalidate(_ written: some Sequence<UInt64>) -> [UInt64] {
        var allSuspect = false
        var dropped: [UInt64] = []
        for frame in written {
            if let blocks = byFrame.removeValue(forKey: frame) {
                dropped.append(frame)
                for b in blocks where Int(b) < entries.count {
                    if let old = entries[Int(b)] { storedBytes -= Self.bytes(of: old) }
                    entries[Int(b)] = nil
                }
            }
            if let blocks = byTable[frame] {
                for b in blocks where Int(b) < suspect.count { suspect[Int(b)] = true }
            }
            if upperTables.contains(frame) { allSuspect = true }
        }
        if allSuspect {
            for b in suspect.indices where entries[b] != nil { suspect[b] = true }
        }
        return dropped
    }

    /// Forgets every entry (the index stays).
    public func invalidateAll() {
        entries = [[UInt64]?](repeating: nil, count: index.count)
        suspect = [Bool](repeating: false, count: index.count)
        byFrame = [:]
        byTable = [:]
        upperTables = []
        storedBytes = 0
    }

    public func resetCounters() {
        blocksReused = 0
        blocksResolved = 0
    }

    /// Frames block `b`'s kept entry was read from (nil: no entry), and the latest write the
    /// write history knew of them when the entry was made (`UInt64.max`: not looked up yet).
    public func frames(of b: Int) -> (frames: [UInt64], lastWrite: UInt64)? {
        guard let words = entries[b] else { return nil }
        var frames: [UInt64] = []
        BlockReferences.forEachDependency(words) { frame, _ in if frame != BlockReferences.notPresent { frames.append(frame) } }
        return (frames, BlockReferences.lastWrite(words))
    }

    /// Records the latest write of block `b`'s frames (from the write history) in its entry.
    public func setLastWrite(_ time: UInt64, of b: Int) {
        guard entries[b] != nil else { return }
        BlockReferences.setLastWrite(&entries[b]!, time)
    }

    /// Estimated bytes of an entry (its words and the array's header) and of its reverse-map slots.
    static func bytes(of words: [UInt64]) -> UInt64 { UInt64(words.count) * 8 + 48 }
}

extension HeapBlockIndex {
    /// Whether two blocks overlap (a hostile or confused ledger): resolution then depends on more
    /// than one block, and references are not carried over.
    var hasOverlaps: Bool {
        for i in starts.indices.dropFirst() where end(of: i - 1) > starts[i] { return true }
        return false
    }
}
