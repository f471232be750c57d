import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import Reachability
import Synchronization
import X86

/// Runs reachability scans of guest processes and keeps what makes repeated scans cheap: the
/// candidate words of every frame read (valid until the dirty log says the frame was written) and
/// when each frame was last written (for staleness).
///
/// A scan is exact for the moment it runs when the process cannot run meanwhile: the caller scans
/// with every vCPU paused, or from the `exit_mmap` hook (the address space has no user left). The
/// lock is never held while waiting for a pause, so a vCPU in the exit hook cannot deadlock with one.
public final class ReachabilityScanner: Sendable {
    struct State: @unchecked Sendable {
        let cache = FrameCandidateCache()
        var history = PageWriteHistory()
        var writes: (any GuestWriteTracking)?
        /// Frames the previous scans used: what the concurrent phase refreshes.
        var lastFrames: Set<UInt64> = []
        var pagesDirtiedSinceScan = 0
        var notes: [String] = []
        var limits = ScanLimits()
        /// Where the next round starts in the list of processes, so a round cut short by its
        /// limits does not always leave out the same ones.
        var nextRoundStart = 0
    }

    let state = Mutex(State())
    /// The part of the pause limit kept for the work after the marking (verdicts, ledger update).
    static let pauseReserve = 0.1
    let kernel: GuestKernel
    let ledger: AllocationLedger
    let clock: TrackerClock
    /// Nanoseconds without a write after which a referenced block counts as stale.
    public let staleAfter: UInt64

    /// - Parameter staleAfter: nanoseconds without a write after which a referenced block is stale.
    public init(kernel: GuestKernel, ledger: AllocationLedger, clock: TrackerClock, staleAfter: UInt64) {
        self.kernel = kernel
        self.ledger = ledger
        self.clock = clock
        self.staleAfter = staleAfter
    }

    /// The time and memory limits of every later scan.
    public var limits: ScanLimits {
        get { state.withLock { $0.limits } }
        set { state.withLock { $0.limits = newValue } }
    }

    /// Uses the guest's page-write log: scans then re-read only frames written since they were read.
    /// Without one, every scan reads everything.
    public func useWriteLog(_ log: any GuestWriteTracking) {
        state.withLock { $0.writes = log }
    }

    /// Turns on the guest's page-write log and uses it.
    public func useWriteLog(of guest: any InspectableGuest) throws {
        useWriteLog(try guest.startWriteLog())
    }

    /// Takes the frames written since the last harvest: drops them from the cache, dates them.
    func harvest(_ s: inout State) {
        guard let writes = s.writes else {
            s.cache.invalidateAll()
            return
        }
        do {
            let written = try writes.harvest()
            s.cache.invalidate(written.frames)
            s.history.record(written.frames, at: clock.now)
            s.pagesDirtiedSinceScan += written.frames.count
        } catch {
            s.cache.invalidateAll()
            s.notes.append("dirty log unavailable (\(error)): full scan")
        }
    }

    /// The concurrent phase, while the guest runs: harvest, and read again the frames the last scans
    /// used that were written since, until `deadline` (monotonic ns) or the memory limit. Frames
    /// written during this read, or not read by then, are read by the exact phase.
    func refresh(memory: GuestMemory, deadline: UInt64) -> Int {
        state.withLock { s in
            harvest(&s)
            let before = s.cache.framesRead
            for frame in s.lastFrames {
                guard ScanBudget.monotonicNanoseconds() < deadline, s.cache.storedBytes < s.limits.memoryBytes else { break }
                _ = try? s.cache.candidates(frame: frame, memory: memory)
            }
            return s.cache.framesRead - before
        }
    }

    /// Scans one address space. `threads` are the process's threads (for an exiting process: the
    /// exiting task alone; for an exec: none). The scan stops at `deadline` (monotonic ns; default:
    /// the scan time limit from now) or at the memory limit, with an incomplete result. Returns nil
    /// when the space has no live blocks.
    @discardableResult
    public func scan(space root: PageTableRoot, mm: UInt64, threads: [GuestTask], view: KernelView, current: [Int: UInt64],
                     kind: String, pauseStarted: UInt64? = nil, deadline: UInt64? = nil) -> SpaceScan? {
        let blocks = ledger.liveBlocks(of: root)
        guard !blocks.isEmpty else { return nil }
        let started = clock.now
        let scan: SpaceScan = state.withLock { s in
            harvest(&s)
            s.cache.resetCounters()
            var notes = s.notes
            s.notes = []
            var budget = ScanBudget(memoryBytes: s.limits.memoryBytes)
            budget.deadline = deadline ?? budget.deadline(after: s.limits.scanSeconds)
            if s.cache.storedBytes > s.limits.memoryBytes / 2 {
                // What earlier scans left would take most of this scan's memory: start afresh.
                s.cache.invalidateAll()
                s.lastFrames = []
            }
            let space = AddressSpace(memory: view.memory, root: root, mode: view.mode)
            var roots = ProcessRootSet()
            var rootsFound = true
            do {
                roots = try ProcessRoots().collect(view: view, mm: mm, threads: threads, current: current, space: space)
            } catch {
                // Without the mappings there are no memory roots: every block would look leaked.
                notes.append("roots could not be collected (\(error))")
                rootsFound = false
            }
            notes += roots.missingThreads.map(\.description)
            let index = HeapBlockIndex(blocks: blocks.map { ($0.key, $0.value.size) })
            var source = ProcessMemorySource(space: space, cache: s.cache, budget: budget)
            let marked = ReachabilityMarker().classify(index, rootRanges: roots.ranges.map(\.range),
                                                       rootWords: roots.registerWords, memory: &source)
            let result = rootsFound ? marked : marked.provenReachableOnly()
            let now = clock.now
            let verdicts = Self.verdicts(index, result, blocks: blocks, source: &source,
                                         history: s.writes == nil ? nil : s.history, now: now)
            notes += Self.notes(result, source: source, limits: s.limits, pauseLimited: pauseStarted != nil)
            s.lastFrames.formUnion(source.touchedFrames)
            let kind = kind != "periodic" ? kind : s.cache.framesReused == 0 ? "full" : "incremental"
            let figures = ScanFigures(kind: kind, threads: roots.threads.count, rootBytes: roots.rootBytes,
                                      bytesScanned: source.bytesScanned, pagesRead: s.cache.framesRead,
                                      pagesReused: s.cache.framesReused, pagesDirtied: s.pagesDirtiedSinceScan,
                                      pauseSeconds: Double(now &- (pauseStarted ?? started)) / 1e9,
                                      totalSeconds: Double(now &- started) / 1e9)
            s.pagesDirtiedSinceScan = 0
            // Exit scans between periodic ones would otherwise keep the frames of every exited
            // process: past half the memory limit, keep only what the scans since the last trim used.
            if s.cache.storedBytes > s.limits.memoryBytes / 2 { s.cache.retainTouched() }
            return SpaceScan(time: now, verdicts: verdicts, figures: figures, notes: notes, complete: result.complete)
        }
        ledger.record(scan, for: root, staleAfter: staleAfter)
        return scan
    }

    /// Each classified block's class, and when its pages were last written: the latest harvest that
    /// saw any of them written, at least its allocation time (without a write history, or when the
    /// budget ran out before its pages were found: now, never stale). Blocks an incomplete scan did
    /// not classify get no verdict.
    static func verdicts(_ index: HeapBlockIndex, _ result: ReachabilityResult, blocks: [UInt64: LiveBlock],
                         source: inout ProcessMemorySource, history: PageWriteHistory?, now: UInt64) -> [UInt64: BlockVerdict] {
        var verdicts: [UInt64: BlockVerdict] = [:]
        verdicts.reserveCapacity(index.count)
        for i in 0..<index.count {
            guard let reachability = result.classes[i] else { continue }
            let start = index.starts[i]
            var written = blocks[start]?.time ?? 0
            if let history, let frames = source.frames(of: start..<max(index.end(of: i), start.addingSaturated(1))) {
                for frame in frames { written = max(written, history.lastWrite(of: frame) ?? 0) }
            } else {
                written = now
            }
            let leader = result.leaders[i] >= 0 ? index.starts[result.leaders[i]] : nil
            verdicts[start] = BlockVerdict(reachability: reachability, leader: leader,
                                           indirectBytes: result.indirectBytes[i], lastWritten: written)
        }
        return verdicts
    }

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

    /// One round over every live process that has outstanding blocks: the concurrent phase while
    /// the guest runs, then the exact phase with every vCPU paused (a full scan the first time, then
    /// incremental). The scanner's lock is not held while the pause is awaited.
    ///
    /// The round ends by the scan time limit; the pause (counted from asking for it) by the pause
    /// limit. A scan cut short by either is incomplete; processes not reached are left to the next
    /// round (which starts with them).
    public func scanLiveProcesses(of guest: any InspectableGuest, pauseTimeout: Double) -> LiveScanRound {
        let limits = self.limits
        let roundDeadline = ScanBudget().deadline(after: limits.scanSeconds)
        let refreshed = refresh(memory: guest.memory, deadline: roundDeadline)
        let pauseStarted = clock.now
        // The marking stops early enough to leave time for the verdicts and the ledger's update.
        let pauseForMarking = limits.pauseSeconds * (1 - Self.pauseReserve)
        let deadline = min(roundDeadline, ScanBudget().deadline(after: pauseForMarking))
        let scans = (try? guest.withGuestPaused(timeout: min(pauseTimeout, pauseForMarking)) {
            scanAll($0, pauseStarted: pauseStarted, deadline: deadline)
        }) ?? []
        return LiveScanRound(scans: scans, pagesRefreshed: refreshed, pauseSeconds: Double(clock.now &- pauseStarted) / 1e9)
    }

    /// The exact phase: scans every live process that has outstanding blocks ("periodic" names each
    /// scan full or incremental from what the cache could reuse), until `deadline` (monotonic ns).
    func scanAll(_ guest: PausedGuest, pauseStarted: UInt64, deadline: UInt64) -> [SpaceScan] {
        let wanted = ledger.scannableSpaces()
        guard !wanted.isEmpty, let view = try? KernelView(kernel: kernel, memory: guest.memory, vcpus: guest.vcpus),
              let tasks = try? view.tasks(), let current = try? view.currentTasks() else { return [] }
        var byMM: [UInt64: [GuestTask]] = [:]
        for task in tasks where task.mm != 0 && !task.isKernelThread { byMM[task.mm, default: []].append(task) }
        var scans: [SpaceScan] = []
        let first = state.withLock { s in
            s.lastFrames = []
            return s.nextRoundStart
        }
        let processes = byMM.sorted(by: { $0.key < $1.key })
        for k in processes.indices {
            let (mm, threads) = processes[(first + k) % processes.count]
            guard ScanBudget.monotonicNanoseconds() < deadline else {
                // Out of time: the next round starts here.
                state.withLock { $0.nextRoundStart = (first + k) % processes.count }
                break
            }
            guard let root = try? view.pageTableRoot(ofMM: mm), wanted.contains(root) else { continue }
            if let scan = scan(space: root, mm: mm, threads: threads, view: view, current: current, kind: "periodic",
                               pauseStarted: pauseStarted, deadline: deadline) {
                scans.append(scan)
                if !scan.complete { state.withLock { $0.nextRoundStart = (first + k + 1) % processes.count } }
            }
        }
        state.withLock { $0.cache.retainTouched() }
        return scans
    }

    /// Drops every cached frame and the list the concurrent phase refreshes: the next round reads
    /// everything in its pause, a full scan (for benchmarks).
    public func forgetCache() {
        state.withLock { s in
            s.cache.invalidateAll()
            s.lastFrames = []
        }
    }
}

/// What one `scanLiveProcesses` round did.
public struct LiveScanRound: Sendable {
    public var scans: [SpaceScan]
    /// Frames read again while the guest ran (the concurrent phase).
    public var pagesRefreshed: Int
    /// From asking for the pause to the end of the exact phase.
    public var pauseSeconds: Double
}
