import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import Reachability
import X86

/// A rescan whose marking runs after the guest resumes: the pause takes only what changed (the
/// ledger's changed blocks, the written and remapped blocks' memory, the roots) and the marking,
/// the cliques and the verdicts work on what it took, never on guest memory.
///
/// Exact for the moment of the pause: every block's references are either a kept entry that no
/// write since it was read has dropped (the pause's harvest is the last before the marking), or
/// resolved from words read in the pause; the roots, the threads' registers and the block set are
/// those of the pause; the heuristics judge a block from the facts recorded with its references.
/// Writes after the pause reach the tables only after the marking (`deferredWrites`).
///
/// The space's table waits in `State.preparedTables`, not here: a copy held by the round's list of
/// prepared scans would make the marking's first change to the table copy all of it.
struct PreparedScan {
    let root: PageTableRoot
    /// The index at the pause, when the ledger's changes made a new one.
    let changed: (index: HeapBlockIndex, times: [UInt64], survivors: [Int])?
    let version: UInt64
    let captured: [CapturedBlock]
    let rootWords: [UInt64]
    let heuristics: LeakCheckHeuristics
    var notes: [String]
    var figures: ScanFigures
    /// Tracker time of the pause: the moment the result describes.
    let time: UInt64
    let started: UInt64
    let indexSeconds: Double
    let rootsSeconds: Double
}

extension ReachabilityScanner {
    /// In the pause: takes what a rescan of `root` needs so that its marking can run after the
    /// guest resumes, or returns nil when a rescan cannot be done that way (no kept table, the
    /// ledger's change log does not reach back to it, roots unreadable, more than half of the
    /// blocks to read, the budget ran out): the caller then scans in the pause as before.
    func prepareAfterPause(_ s: inout State, root: PageTableRoot, mm: UInt64, threads: [GuestTask], view: KernelView,
                           current: [Int: UInt64], pauseStarted: UInt64, deadline: UInt64) -> PreparedScan? {
        guard s.writes != nil, s.storedBytes <= s.limits.memoryBytes / 2, let kept = s.tables[root],
              let version = kept.version, kept.index.count > 0,
              let changes = ledger.changes(of: root, since: version) else { return nil }
        let started = clock.now
        s.pagingMode = view.mode
        // The harvest drops the table's entries that read frames written since the last one.
        harvest(&s)
        // Out of the map while it changes (so that it is changed in place); back in when the
        // rescan is done in the pause instead.
        guard var table = s.tables.removeValue(forKey: root) else { return nil }
        var prepared = false
        defer { if !prepared { s.tables[root] = table } }
        guard table.version == version else { return nil }
        s.cache.resetCounters()
        table.resetCounters()
        let changed = changes.blocks.mapValues { $0.map { (size: $0.size, time: $0.time) } }
        let applied = table.index.applying(changed, times: table.times)
        let (index, times) = applied.map { ($0.index, $0.times) } ?? (table.index, table.times)
        guard index.count > 0 else { return nil }
        let indexed = clock.now
        let space = AddressSpace(memory: view.memory, root: root, mode: view.mode)
        guard let roots = try? ProcessRoots().collect(view: view, mm: mm, threads: threads, current: current, space: space,
                                                      blocks: index) else { return nil }
        var heuristics = s.heuristics
        heuristics.readOnlyData = roots.readOnlyData
        let usesFacts = !heuristics.enabled.isEmpty
        if usesFacts, roots.readOnlyData != table.factsReadOnlyData { return nil }
        var budget = ScanBudget(memoryBytes: s.limits.memoryBytes)
        budget.deadline = deadline
        var source = ProcessMemorySource(space: space, cache: s.cache, budget: budget)
        source.heldElsewhere = s.storedBytes &- s.cache.storedBytes
        // The blocks whose memory must be read now: kept ones without a usable entry, and new ones.
        var toRead: [(start: UInt64, size: UInt64, time: UInt64)] = []
        for b in table.blocksNeedingResolution() where applied.map({ $0.survivors[b] >= 0 }) ?? true {
            let range = table.index.range(of: b)
            if let now = source.dependencies(of: range), table.confirmIfUnchanged(b, dependencies: now) { continue }
            toRead.append((range.lowerBound, table.index.sizes[b], table.times[b]))
        }
        for j in applied?.added ?? [] { toRead.append((index.starts[j], index.sizes[j], times[j])) }
        // Most of the heap to read: a scan in the pause does the same reading with less memory.
        guard toRead.count * 2 <= index.count else { return nil }
        var rootWords = roots.registerWords
        for range in roots.ranges { source.forEachCandidate(in: range.range) { rootWords.append($0) } }
        var captured: [CapturedBlock] = []
        captured.reserveCapacity(toRead.count)
        for block in toRead {
            guard let read = CapturedBlock.read(start: block.start, size: block.size, time: block.time, from: &source,
                                                heuristics: heuristics) else { return nil }
            captured.append(read)
        }
        guard !source.isIncomplete else { return nil }
        table.noteUpperTables(source.upperTables)
        prepared = true
        s.preparedTables[root] = table
        if s.deferred == nil { s.deferred = DeferredWrites() }
        s.lastFrames.formUnion(source.touchedFrames)
        let rooted = clock.now
        var notes = s.notes
        s.notes = []
        notes += roots.missingThreads.map(\.description)
        if !roots.threadsWithoutVectorRegisters.isEmpty {
            notes.append("vector registers of thread(s) \(roots.threadsWithoutVectorRegisters.map(String.init).joined(separator: ", ")) could not be read")
        }
        if source.refusedBytes > 0 { notes.append("\(source.refusedBytes) byte(s) of roots or blocks outside user space were not scanned") }
        let figures = ScanFigures(kind: "incremental", threads: roots.threads.count, rootBytes: roots.rootBytes,
                                  bytesScanned: source.bytesScanned,
                                  pagesRead: s.cache.framesRead, pagesReused: s.cache.framesReused,
                                  pagesDirtied: s.pagesDirtiedSinceScan,
                                  pauseSeconds: Double(rooted &- pauseStarted) / 1e9, totalSeconds: 0)
        s.pagesDirtiedSinceScan = 0
        return PreparedScan(root: root, changed: applied.map { ($0.index, $0.times, $0.survivors) },
                            version: changes.version,
                            captured: captured, rootWords: rootWords, heuristics: heuristics, notes: notes, figures: figures,
                            time: rooted, started: started, indexSeconds: Double(indexed &- started) / 1e9,
                            rootsSeconds: Double(rooted &- indexed) / 1e9)
    }

    /// After the pause: the marking, the cliques and the verdicts over what the pause took. The
    /// table then takes the writes harvested since the pause, and goes back to the map. Nil when
    /// the prepared table is gone (a round's pause ended without its scans being finished).
    func finish(_ s: inout State, _ prepared: PreparedScan) -> SpaceScan? {
        var p = prepared
        // Out of the map, the only holder, so that it is changed in place.
        guard var table = s.preparedTables.removeValue(forKey: p.root) else { return nil }
        let begun = clock.now
        if let changed = p.changed {
            table.update(index: changed.index, times: changed.times, survivors: changed.survivors, version: p.version)
        } else {
            table.keepIndex(version: p.version)
        }
        let index = table.index
        for block in p.captured {
            guard let b = index.block(startingAt: block.start) else { continue }
            table.resolve(b, candidates: block.candidates, dependencies: block.dependencies, facts: block.facts)
        }
        let indexed = clock.now
        var memory = NoMemorySource()
        let result: ReachabilityResult
        // Blocks whose verdicts may have changed (nil: any).
        var revisit: [Int]?
        let rootHits = table.rootHits(of: p.rootWords)
        if let reused = table.reusableMarking(rootHits: rootHits, heuristics: p.heuristics) {
            // No pointer, judged block, root or ledger block changed since the last marking.
            (result, revisit) = reused
            p.figures.markingKept = true
        } else {
            result = ReachabilityMarker().classify(rootRanges: [], rootWords: p.rootWords, memory: &memory,
                                                   heuristics: p.heuristics, references: &table)
            table.keepMarking(result, rootHits: rootHits, heuristics: p.heuristics)
            p.figures.markingKept = false
        }
        let marking = clock.now
        var kept = s.verdicts.removeValue(forKey: p.root) ?? SpaceVerdicts()
        let verdicts = kept.update(&table, result, frames: { _ in nil }, history: s.writes == nil ? nil : s.history, now: p.time,
                                   revisiting: revisit)
        let changes = kept.changes(forScanAt: p.time)
        s.verdicts[p.root] = kept
        let now = clock.now
        if memory.refusedReads > 0 {
            p.notes.append("the scan after the pause needed \(memory.refusedReads) read(s) of guest memory it had not taken: incomplete")
        }
        if !result.complete {
            p.notes.append("the scan is incomplete: blocks it did not prove reachable are not classified (not reported as leaks)")
        }
        // Resolved: the blocks read in the pause and those whose kept words were looked up again.
        p.figures.blocksResolved = table.blocksResolved
        p.figures.blocksReused = max(0, index.count - table.blocksResolved)
        p.figures.markedAfterPause = true
        p.figures.totalSeconds = p.figures.pauseSeconds + Double(now &- begun) / 1e9
        p.figures.phases = ScanPhases(index: p.indexSeconds + Double(indexed &- begun) / 1e9, roots: p.rootsSeconds,
                                      marking: Double(marking &- indexed) / 1e9, verdicts: Double(now &- marking) / 1e9)
        if let deferred = s.deferred {
            if deferred.all { table.invalidateAll() } else { s.lastFrames.formUnion(table.invalidate(deferred.frames)) }
        }
        s.tables[p.root] = table
        return SpaceScan(time: p.time, verdicts: verdicts, figures: p.figures, notes: p.notes, complete: result.complete,
                         verdictChanges: changes)
    }
}
