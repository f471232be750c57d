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
/// The entries live one after another in one array (`BlockReferences` layout each), so that the
/// marking reads them without a reference count per block; dropped ones are compacted away.
///
/// A value type, so that the marking works on it in place with no dynamic exclusivity checks.
public struct BlockReferenceTable: Sendable {
    /// The index the entries are resolved against, and the ledger version it was built from.
    public private(set) var index: HeapBlockIndex
    public private(set) var version: UInt64?
    /// Allocation time of each block (a freed and reallocated block is another block).
    public private(set) var times: [UInt64]
    /// Lowest block start to highest block end (words outside it hit no block).
    private(set) var span: Range<UInt64> = 0..<0
    /// Whether blocks of the index overlap (a hostile or confused ledger).
    private var overlapping = false
    /// Whether entries are kept at all: a transient table (a marking without one) reuses its
    /// storage for each block.
    let keeps: Bool
    /// Per block: where its entry starts in `words`, or -1.
    private var offsets: [Int]
    /// Blocks whose translation must be checked before their entry is trusted again.
    private var suspect: [Bool]
    /// The entries, one after another; dropped ones stay as garbage until `compactIfWasteful`.
    private(set) var words: [UInt64] = []
    private var liveWords = 0
    /// Frame → the virtual page whose entry read it (and further pages, for a frame mapped twice).
    private var pageOfFrame: [UInt64: UInt64] = [:]
    private var morePagesOfFrame: [UInt64: [UInt64]] = [:]
    /// Table frame holding leaf entries → the lowest and highest virtual page it was seen mapping.
    private var pagesOfTable: [UInt64: ClosedRange<UInt64>] = [:]
    /// Upper-level table frames (above the leaf entries) the space's walks went through.
    private var upperTables: Set<UInt64> = []
    /// The page, frame and table `register` recorded last.
    private var lastRegistered: (page: UInt64, frame: UInt64, table: UInt64)?
    /// A block being resolved: its hits (pairs) and misses so far.
    private var pendingHits: [UInt64] = []
    private var pendingMisses: [UInt64] = []
    /// The last complete marking kept for reuse, and what changed since in the entries it used
    /// (`BlockReferenceTable+KeptMarking.swift`); nil when there is none.
    var keptMarking: KeptMarking?
    /// Entries used as kept and entries resolved, since `resetCounters`.
    public private(set) var blocksReused = 0
    public private(set) var blocksResolved = 0

    /// A table that keeps entries between scans.
    public init() { self.init(keeping: true) }

    init(keeping: Bool) {
        keeps = keeping
        index = HeapBlockIndex(blocks: [])
        times = []
        offsets = []
        suspect = []
    }

    /// A table for one marking over `index` that keeps nothing.
    static func transient(for index: HeapBlockIndex) -> BlockReferenceTable {
        var table = BlockReferenceTable(keeping: false)
        table.setIndex(index, times: [UInt64](repeating: 0, count: index.count))
        return table
    }

    /// Bytes the kept entries and their maps take.
    public var storedBytes: UInt64 {
        UInt64(words.count) * 8 + UInt64(offsets.count) * 9
            + UInt64(pageOfFrame.count + pagesOfTable.count + upperTables.count) * 48
            + (keptMarking?.storedBytes ?? 0)
    }

    private mutating func setIndex(_ newIndex: HeapBlockIndex, times newTimes: [UInt64]) {
        index = newIndex
        times = newTimes
        span = newIndex.span
        overlapping = newIndex.hasOverlaps
        removeEntries()
    }

    /// No entry for any block of the index, and nothing recorded of what entries depended on.
    private mutating func removeEntries() {
        offsets = [Int](repeating: -1, count: index.count)
        suspect = [Bool](repeating: false, count: index.count)
        words = []
        liveWords = 0
        pageOfFrame = [:]
        morePagesOfFrame = [:]
        pagesOfTable = [:]
        lastRegistered = nil
        keptMarking = nil
    }

    /// Makes `blocks` (start, size, allocation time; any order) the index, unless `version` says the
    /// ledger has not changed since the current one was built (`update(index:times:survivors:version:)`).
    public mutating func update(blocks: [(start: UInt64, size: UInt64, time: UInt64)], version: UInt64) {
        guard version != self.version else { return }
        let sorted = blocks.sorted { $0.start < $1.start }
        let newIndex = HeapBlockIndex(blocks: sorted.map { ($0.start, $0.size) })
        let newTimes = sorted.map(\.time)
        update(index: newIndex, times: newTimes, survivors: newIndex.survivors(of: index, olderTimes: times, times: newTimes),
               version: version)
    }

    /// Makes `newIndex` (with its blocks' allocation times) the index. `survivors` gives, for each
    /// block of the current index, its place in the new one when it is the same block (same start,
    /// size and time), else -1. A surviving block keeps its entry: its memory did not change, so
    /// its candidate words (every one is in the entry, as a hit or a miss) are looked up in the new
    /// index again where the result can differ (a target gone, a value inside a new block); the
    /// other entries are only renumbered.
    public mutating func update(index newIndex: HeapBlockIndex, times newTimes: [UInt64], survivors map: [Int], version: UInt64) {
        if newIndex.starts == index.starts, newIndex.sizes == index.sizes, newTimes == times {
            // The same blocks (changes that undid each other): every entry stands as it is.
            self.version = version
            return
        }
        let old = (index: index, offsets: offsets, suspect: suspect, words: words)
        setIndex(newIndex, times: newTimes)
        self.version = version
        guard keeps, old.words.count > 0, !overlapping, map.count == old.index.count else { return }
        var survived = [Bool](repeating: false, count: newIndex.count)
        for j in map where j >= 0 { survived[j] = true }
        let added = survived.indices.filter { !survived[$0] }.map { newIndex.range(of: $0) }
        func inAdded(_ value: UInt64) -> Bool {
            let k = partitionPoint(count: added.count) { added[$0].upperBound <= value }
            return k < added.count && added[k].contains(value)
        }
        words.reserveCapacity(old.words.count)
        for o in old.offsets.indices where old.offsets[o] >= 0 && map[o] >= 0 {
            let offset = old.offsets[o]
            var same = true
            var k = BlockReferences.hitsStart(offset)
            for _ in 0..<BlockReferences.counts(in: old.words, at: offset).hits {
                if map[Int(old.words[k + 1] >> 1)] < 0 || inAdded(old.words[k]) {
                    same = false
                    break
                }
                k += 2
            }
            if same {
                for value in BlockReferences.misses(in: old.words, at: offset) where inAdded(value) {
                    same = false
                    break
                }
            }
            let b = map[o]
            offsets[b] = words.count
            if same {
                words += BlockReferences.entry(in: old.words, at: offset)
                BlockReferences.retarget(&words, at: offsets[b]) { map[$0] }
            } else {
                reresolve(entryAt: offset, of: old.words)
            }
            liveWords += words.count - offsets[b]
            suspect[b] = old.suspect[o]
            register(b)
        }
    }

    /// Records that the ledger's blocks at `version` are those of the index (changes that undid
    /// each other): every entry stands.
    public mutating func keepIndex(version: UInt64) { self.version = version }

    /// Appends the entry at `offset` of `oldWords` resolved against the current index: the same
    /// candidate words, dependencies, last write and facts.
    private mutating func reresolve(entryAt offset: Int, of oldWords: [UInt64]) {
        blocksResolved += 1
        beginResolution()
        var k = BlockReferences.hitsStart(offset)
        for _ in 0..<BlockReferences.counts(in: oldWords, at: offset).hits {
            addCandidate(oldWords[k])
            k += 2
        }
        for value in BlockReferences.misses(in: oldWords, at: offset) { addCandidate(value) }
        let start = words.count
        BlockReferences.append(to: &words, hits: pendingHits, dependencies: Array(BlockReferences.dependencies(in: oldWords, at: offset)),
                               misses: pendingMisses, facts: BlockReferences.facts(in: oldWords, at: offset))
        words[start + 1] = oldWords[offset + 1]
    }

    // MARK: The marking's use

    /// Where block `b`'s kept entry starts, when it can be trusted without a check.
    @inline(__always)
    func trustedEntry(_ b: Int) -> Int? {
        let offset = offsets[b]
        return offset >= 0 && !suspect[b] ? offset : nil
    }

    /// Where block `b`'s kept entry starts when its translation must be checked first.
    func suspectEntry(_ b: Int) -> Int? { suspect[b] && offsets[b] >= 0 ? offsets[b] : nil }

    /// Block `b`'s word at byte `k` as the facts of its trusted entry know it (`known` false: no
    /// trusted entry with facts; then the word must be read from memory).
    func factWord(of b: Int, byte k: UInt64) -> (known: Bool, word: UInt64?) {
        guard let offset = trustedEntry(b) else { return (false, nil) }
        return BlockReferences.factWord(in: words, at: offset, byte: k)
    }

    /// Whether every block has an entry that can be trusted without a check: a marking then needs
    /// no guest memory but for its roots (and, with heuristics, the facts, which every entry made
    /// with them has).
    public func everyEntryTrusted(withFacts: Bool) -> Bool {
        for b in offsets.indices {
            let offset = offsets[b]
            if offset < 0 || suspect[b] || (withFacts && words[offset + 3] & 1 == 0) { return false }
        }
        return true
    }

    /// Read-only data of the process's mapped files the entries' vtable facts were judged against.
    public private(set) var factsReadOnlyData: [Range<UInt64>] = []

    /// Judges later vtable facts against `readOnlyData`; entries judged against other ranges are
    /// dropped (a file mapped or unmapped since: rare), so that every entry's facts hold for it.
    public mutating func useReadOnlyData(_ readOnlyData: [Range<UInt64>]) {
        guard readOnlyData != factsReadOnlyData else { return }
        factsReadOnlyData = readOnlyData
        removeEntries()
    }

    /// The blocks with no entry that can be used without reading their memory (none, or suspect).
    public func blocksNeedingResolution() -> [Int] {
        var found: [Int] = []
        for b in offsets.indices where offsets[b] < 0 || suspect[b] { found.append(b) }
        return found
    }

    /// Keeps block `b`'s suspect entry when `dependencies` (its translation walked again) are what
    /// it was derived from; false when it has no such entry.
    public mutating func confirmIfUnchanged(_ b: Int, dependencies: [UInt64]) -> Bool {
        guard let kept = suspectEntry(b), entry(at: kept, hasDependencies: dependencies) else { return false }
        confirm(b)
        return true
    }

    /// Makes block `b`'s entry from `candidates`, every candidate word of its memory as read at
    /// one moment, with what it was derived from (`dependencies`) and the heuristics' `facts`.
    public mutating func resolve(_ b: Int, candidates: [UInt64], dependencies: [UInt64], facts: BlockFacts?) {
        beginResolution()
        for value in candidates { addCandidate(value) }
        _ = finishResolution(of: b, dependencies: dependencies, facts: facts)
    }

    /// Resolves every block without a trusted entry from `memory` now, while the guest runs: the
    /// harvest of the next pause drops what was written after it was read (as for the frame
    /// cache), so what is left there is exact at that pause and the pause reads only the rest.
    /// Facts are judged against `factsReadOnlyData`. Stops at `deadline` (monotonic ns).
    public mutating func resolveAhead(memory: inout ProcessMemorySource, heuristics: LeakCheckHeuristics,
                                      deadline: UInt64) -> Int {
        guard keeps else { return 0 }
        var heuristics = heuristics
        heuristics.readOnlyData = factsReadOnlyData
        var resolved = 0
        for b in blocksNeedingResolution() {
            guard ScanBudget.monotonicNanoseconds() < deadline, !memory.isIncomplete else { break }
            let range = index.range(of: b)
            guard let now = memory.dependencies(of: range) else { continue }
            if confirmIfUnchanged(b, dependencies: now) { continue }
            beginResolution()
            memory.forEachCandidate(in: range) { addCandidate($0) }
            let facts = heuristics.enabled.isEmpty ? nil
                : memory.facts(of: range, heuristics: heuristics, vtables: pendingWordsMayHoldVtables(heuristics))
            guard !memory.isIncomplete, heuristics.enabled.isEmpty || facts != nil else { break }
            _ = finishResolution(of: b, dependencies: now, facts: facts)
            resolved += 1
        }
        return resolved
    }

    /// Whether `dependencies` are those of the entry at `offset`.
    func entry(at offset: Int, hasDependencies dependencies: [UInt64]) -> Bool {
        BlockReferences.dependencies(in: words, at: offset).elementsEqual(dependencies)
    }

    /// A suspect entry whose translation was found unchanged.
    mutating func confirm(_ b: Int) {
        suspect[b] = false
        blocksReused += 1
    }

    mutating func countReuse() { blocksReused += 1 }

    /// Starts resolving a block: `addHit` and `addMiss` collect, `finish` stores.
    @inline(__always)
    mutating func beginResolution() {
        pendingHits.removeAll(keepingCapacity: true)
        pendingMisses.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    mutating func addHit(_ value: UInt64, block: Int, atStart: Bool) {
        pendingHits.append(value)
        pendingHits.append(UInt64(block) << 1 | (atStart ? 1 : 0))
    }

    @inline(__always)
    mutating func addMiss(_ value: UInt64) { if keeps { pendingMisses.append(value) } }

    /// Adds a candidate word of the block being resolved: a hit when it points into a block.
    @inline(__always)
    mutating func addCandidate(_ value: UInt64) {
        if span.contains(value), let hit = index.block(containing: value) {
            addHit(value, block: hit.block, atStart: hit.atStart)
        } else {
            addMiss(value)
        }
    }

    /// Whether a word of the block being resolved may be a vtable pointer (one in a file's
    /// read-only data): then its slots are worth finding.
    func pendingWordsMayHoldVtables(_ heuristics: LeakCheckHeuristics) -> Bool {
        guard heuristics.enabled.contains(.multipleInheritance), !heuristics.readOnlyData.isEmpty else { return false }
        if pendingMisses.contains(where: { heuristics.isVirtualTable($0) }) { return true }
        return stride(from: 0, to: pendingHits.count, by: 2).contains { heuristics.isVirtualTable(pendingHits[$0]) }
    }

    /// Stores what was collected for block `b` and returns where its entry starts. It is kept for
    /// later scans when `dependencies` are known; else (or in a transient table) it serves this
    /// use only.
    mutating func finishResolution(of b: Int, dependencies: [UInt64]?, facts: BlockFacts? = nil) -> Int {
        blocksResolved += 1
        if !keeps { words.removeAll(keepingCapacity: true) }
        let offset = words.count
        BlockReferences.append(to: &words, hits: pendingHits, dependencies: dependencies ?? [], misses: pendingMisses,
                               facts: facts)
        guard keeps, dependencies != nil else { return offset }
        drop(b)
        offsets[b] = offset
        liveWords += words.count - offset
        suspect[b] = false
        register(b)
        if let used = keptMarking?.retired[b] { compareWithMarked(b, usedEntry: used, facts: facts) }
        return offset
    }

    // MARK: Invalidation

    /// Adds upper-level tables that walks of this space went through.
    public mutating func noteUpperTables(_ tables: Set<UInt64>) { upperTables.formUnion(tables) }

    /// Frames that were written: entries that read them are dropped, entries mapped by them are
    /// checked again before use (all of them when an upper-level table was written). Returns the
    /// written frames that dropped entries had read (worth reading again before the next scan).
    @discardableResult
    public mutating func invalidate(_ written: some Sequence<UInt64>) -> [UInt64] {
        lastRegistered = nil
        var allSuspect = false
        var dropped: [UInt64] = []
        for frame in written {
            if let page = pageOfFrame.removeValue(forKey: frame) {
                dropped.append(frame)
                for page in [page] + (morePagesOfFrame.removeValue(forKey: frame) ?? []) {
                    for b in blocks(overlapping: page...(page + 4095)) { drop(b) }
                }
            }
            if let pages = pagesOfTable[frame] {
                for b in blocks(overlapping: pages.lowerBound...(pages.upperBound + 4095)) where offsets[b] >= 0 { suspect[b] = true }
            }
            if upperTables.contains(frame) { allSuspect = true }
        }
        if allSuspect {
            for b in offsets.indices where offsets[b] >= 0 { suspect[b] = true }
        }
        compactIfWasteful()
        return dropped
    }

    /// Forgets every entry (the index stays).
    public mutating func invalidateAll() {
        removeEntries()
        upperTables = []
    }

    public mutating func resetCounters() {
        blocksReused = 0
        blocksResolved = 0
    }

    /// The latest write the write history knew of block `b`'s frames when its entry was made, or
    /// nil without an entry; looked up (and kept) with `history` the first time.
    public mutating func lastWrite(of b: Int, history: PageWriteHistory) -> UInt64? {
        let offset = offsets[b]
        guard offset >= 0 else { return nil }
        if words[offset + 1] == BlockReferences.notLookedUp {
            var last: UInt64 = 0
            BlockReferences.forEachDependency(in: words, at: offset) { frame, _ in
                if frame != BlockReferences.notPresent { last = max(last, history.lastWrite(of: frame) ?? 0) }
            }
            words[offset + 1] = last
        }
        return words[offset + 1]
    }

    // MARK: Bookkeeping

    /// Records what block `b`'s entry depends on, for `invalidate`.
    private mutating func register(_ b: Int) {
        var page = index.starts[b] & ~0xFFF
        BlockReferences.forEachDependency(in: words, at: offsets[b]) { frame, table in
            defer { page &+= 4096 }
            // Neighbouring blocks share pages: the last one registered is known already.
            if let last = lastRegistered, last.page == page, last.frame == frame, last.table == table { return }
            lastRegistered = (page, frame, table)
            if frame != BlockReferences.notPresent {
                if let known = pageOfFrame[frame] {
                    if known != page, !(morePagesOfFrame[frame]?.contains(page) ?? false) { morePagesOfFrame[frame, default: []].append(page) }
                } else {
                    pageOfFrame[frame] = page
                }
            }
            if let pages = pagesOfTable[table] {
                if !pages.contains(page) { pagesOfTable[table] = min(pages.lowerBound, page)...max(pages.upperBound, page) }
            } else {
                pagesOfTable[table] = page...page
            }
        }
    }

    private mutating func drop(_ b: Int) {
        guard offsets[b] >= 0 else { return }
        // The entry stays in `words` (garbage until a compaction): a kept marking's block is
        // compared with it once it is made again.
        if keptMarking != nil, keptMarking?.retired[b] == nil { keptMarking?.retired[b] = offsets[b] }
        liveWords -= BlockReferences.length(in: words, at: offsets[b])
        offsets[b] = -1
        suspect[b] = false
    }

    /// Every block that has a byte in `pages`.
    private func blocks(overlapping pages: ClosedRange<UInt64>) -> [Int] {
        var found: [Int] = []
        let starts = index.starts
        var i = partitionPoint(count: starts.count) { starts[$0] <= pages.upperBound }
        // Without overlapping blocks, ends only fall going down: stop at the first that ends
        // before the pages (with them, look at every block below).
        while i > 0 {
            i -= 1
            if index.end(of: i) > pages.lowerBound || index.starts[i] >= pages.lowerBound {
                found.append(i)
            } else if !overlapping {
                break
            }
        }
        return found
    }

    /// Rewrites `words` without the dropped entries once they are most of it.
    private mutating func compactIfWasteful() {
        guard words.count > 4096, liveWords < words.count / 2 else { return }
        // The entries a kept marking used are garbage that goes now.
        if keptMarking?.retired.isEmpty == false { keptMarking = nil }
        var compacted: [UInt64] = []
        compacted.reserveCapacity(liveWords)
        for b in offsets.indices where offsets[b] >= 0 {
            let entry = BlockReferences.entry(in: words, at: offsets[b])
            offsets[b] = compacted.count
            compacted += entry
        }
        words = compacted
        liveWords = compacted.count
    }
}

extension HeapBlockIndex {
    /// Whether two blocks overlap (a hostile or confused ledger): resolution then depends on more
    /// than one block, and references are not carried over.
    var hasOverlaps: Bool {
        for i in starts.indices.dropFirst() where end(of: i - 1) > starts[i] { return true }
        return false
    }
}
