import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import Reachability
import X86

/// The scan of one address space: roots, marking, verdicts and what the report says of it.
extension ReachabilityScanner {
    /// Scans one address space. `threads` are the process's threads (for an exiting process: the
    /// exiting task alone, and `exitedThreads` the group's threads that died in the exit before it;
    /// for an exec: none). The scan stops at `deadline` (monotonic ns; default: the scan time limit
    /// from now) or at the memory limit, with an incomplete result. Returns nil when the space has
    /// no live blocks. The ledger records the scan unless `recording` is false (a round records its
    /// scans after the pause).
    @discardableResult
    public func scan(space root: PageTableRoot, mm: UInt64, threads: [GuestTask], exitedThreads: [ThreadRootState] = [],
                     view: KernelView, current: [Int: UInt64],
                     kind: String, pauseStarted: UInt64? = nil, deadline: UInt64? = nil, recording: Bool = true) -> SpaceScan? {
        let (blocks, version) = ledger.liveBlocksAndVersion(of: root)
        guard !blocks.isEmpty else { return nil }
        let started = clock.now
        let scan: SpaceScan = state.withLock { s in
            harvest(&s)
            s.cache.resetCounters()
            var notes = s.notes
            s.notes = []
            var budget = ScanBudget(memoryBytes: s.limits.memoryBytes)
            budget.deadline = deadline ?? budget.deadline(after: s.limits.scanSeconds)
            if s.storedBytes > s.limits.memoryBytes / 2 {
                // What earlier scans left would take most of this scan's memory: start afresh.
                s.invalidateAll()
                s.tables = [:]
                s.lastFrames = []
            }
            // Out of the map while in use, so that it is changed in place.
            var table = s.tables.removeValue(forKey: root) ?? BlockReferenceTable()
            table.resetCounters()
            if table.version != version {
                table.update(blocks: blocks.map { ($0.key, $0.value.size, $0.value.time) }, version: version)
            }
            let indexed = clock.now
            let space = AddressSpace(memory: view.memory, root: root, mode: view.mode)
            s.pagingMode = view.mode
            var roots = ProcessRootSet()
            var rootsFound = true
            let index = table.index
            var exitFrame: ExitFrame?
            if kind == Self.exitKind, !threads.isEmpty || !exitedThreads.isEmpty, let mappings = try? view.mappings(ofMM: mm) {
                exitFrame = s.exitLocator?.exitFrame(mappings: mappings, space: space)
            }
            do {
                roots = try ProcessRoots().collect(view: view, mm: mm, threads: threads, current: current, space: space,
                                                   blocks: index, exitFrame: exitFrame, exitedThreads: exitedThreads)
            } catch {
                // Without the mappings there are no memory roots: every block would look leaked.
                notes.append("roots could not be collected (\(error))")
                rootsFound = false
            }
            notes += roots.missingThreads.map(\.description)
            if !roots.threadsWithoutVectorRegisters.isEmpty {
                notes.append("vector registers of thread(s) \(roots.threadsWithoutVectorRegisters.map(String.init).joined(separator: ", ")) could not be read")
            }
            let rooted = clock.now
            var source = ProcessMemorySource(space: space, cache: s.cache, budget: budget)
            source.heldElsewhere = (s.storedBytes &- s.cache.storedBytes).addingSaturated(table.storedBytes)
            var heuristics = s.heuristics
            heuristics.readOnlyData = roots.readOnlyData
            if !heuristics.enabled.isEmpty { table.useReadOnlyData(roots.readOnlyData) }
            let marked = ReachabilityMarker().classify(rootRanges: roots.ranges.map(\.range), rootWords: roots.registerWords,
                                                       processMemory: &source, heuristics: heuristics, references: &table)
            table.noteUpperTables(source.upperTables)
            // The verdicts take this marking's result: a rescan after the pause compares with it, not an older one.
            table.forgetMarking()
            let result = rootsFound ? marked : marked.provenReachableOnly()
            let marking = clock.now
            var kept = s.verdicts.removeValue(forKey: root) ?? SpaceVerdicts()
            let verdicts = kept.update(&table, result, frames: { source.frames(of: $0) }, history: s.writes == nil ? nil : s.history,
                                       now: marking)
            let now = clock.now
            let changes = kept.changes(forScanAt: now)
            s.verdicts[root] = kept
            notes += Self.notes(result, source: source, limits: s.limits, pauseLimited: pauseStarted != nil)
            s.lastFrames.formUnion(source.touchedFrames)
            let reused = s.cache.framesReused > 0 || table.blocksReused > 0
            let kind = kind != "periodic" ? kind : reused ? "incremental" : "full"
            var figures = ScanFigures(kind: kind, threads: roots.threads.count, rootBytes: roots.rootBytes,
                                      bytesScanned: source.bytesScanned, pagesRead: s.cache.framesRead,
                                      pagesReused: s.cache.framesReused, pagesDirtied: s.pagesDirtiedSinceScan,
                                      pauseSeconds: Double(now &- (pauseStarted ?? started)) / 1e9,
                                      totalSeconds: Double(now &- started) / 1e9)
            figures.blocksResolved = table.blocksResolved
            figures.blocksReused = table.blocksReused
            figures.phases = ScanPhases(index: Double(indexed &- started) / 1e9, roots: Double(rooted &- indexed) / 1e9,
                                        marking: Double(marking &- rooted) / 1e9, verdicts: Double(now &- marking) / 1e9)
            s.pagesDirtiedSinceScan = 0
            // The space of an exiting process ends with this scan: nothing of it is kept.
            if kind == Self.exitKind { s.verdicts[root] = nil } else { s.tables[root] = table }
            // Exit scans between periodic ones would otherwise keep the frames of every exited
            // process: past half the memory limit, keep only what the scans since the last trim
            // used, and only this space's references.
            if s.storedBytes > s.limits.memoryBytes / 2 {
                s.cache.retainTouched()
                s.tables = s.tables.filter { $0.key == root }
                s.verdicts = s.verdicts.filter { $0.key == root }
            }
            return SpaceScan(time: now, verdicts: verdicts, figures: figures, notes: notes, complete: result.complete,
                             verdictChanges: changes)
        }
        if recording { ledger.record(scan, for: root, staleAfter: staleAfter) }
        return scan
    }

    /// The `kind` of the scan of a process as it exits.
    public static let exitKind = "at exit"

    /// What the report should say about how far a scan got.
    static func notes(_ result: ReachabilityResult, source: ProcessMemorySource, limits: ScanLimits, pauseLimited: Bool) -> [String] {
        var notes: [String] = []
        switch source.stop {
        case .timeLimit?:
            notes.append(pauseLimited
                ? "scan stopped at the pause limit (\(limits.pauseSeconds) s) or the scan time limit (\(limits.scanSeconds) s)"
                : "scan stopped at the scan time limit (\(limits.scanSeconds) s)")
        case .memoryLimit?:
            notes.append("scan stopped at the memory limit (\(limits.memoryBytes >> 20) MiB)")
        case nil: break
        }
        if source.unreadablePages > 0 { notes.append("\(source.unreadablePages) mapped page(s) or page table(s) could not be read") }
        if !result.complete {
            notes.append("the scan is incomplete: blocks it did not prove reachable are not classified (not reported as leaks)")
        } else if !result.leakGroupingComplete {
            notes.append("leaks not fully grouped: some indirect leaks are counted as direct")
        }
        if source.refusedBytes > 0 { notes.append("\(source.refusedBytes) byte(s) of roots or blocks outside user space were not scanned") }
        return notes
    }
}
