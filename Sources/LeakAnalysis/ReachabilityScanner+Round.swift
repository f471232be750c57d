import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import Reachability
import X86

/// A periodic round: the concurrent phase, then every live process scanned in one pause.
extension ReachabilityScanner {
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
        let refreshStarted = clock.now
        let refreshed = refresh(memory: guest.memory, deadline: roundDeadline)
        let pauseStarted = clock.now
        // The marking stops early enough to leave time for the verdicts and the ledger's update.
        let pauseForMarking = limits.pauseSeconds * (1 - Self.pauseReserve)
        let deadline = min(roundDeadline, ScanBudget().deadline(after: pauseForMarking))
        var parked = pauseStarted
        let taken: [PausedScan] = (try? guest.withGuestPaused(timeout: min(pauseTimeout, pauseForMarking)) {
            parked = clock.now
            return scanAll($0, pauseStarted: pauseStarted, deadline: deadline)
        }) ?? []
        let pauseSeconds = Double(clock.now &- pauseStarted) / 1e9
        // Rescans prepared in the pause are marked now, while the guest runs.
        let scans: [(root: PageTableRoot, scan: SpaceScan)] = state.withLock { s in
            defer {
                s.deferred = nil
                s.preparedTables = [:]
                // Trimmed to what the round used, after the pause (it copies the cache's map).
                s.cache.retainTouched()
            }
            return taken.compactMap { item in
                switch item {
                case .scanned(let root, let scan): (root, scan)
                case .prepared(let prepared): finish(&s, prepared).map { (prepared.root, $0) }
                }
            }
        }
        // The ledger's bookkeeping of the scans (its site history) needs no pause: blocks
        // allocated since are newer than the scan, and no verdict applies to them.
        for (root, scan) in scans { ledger.record(scan, for: root, staleAfter: staleAfter) }
        return LiveScanRound(scans: scans.map(\.scan), pagesRefreshed: refreshed.pages, blocksResolvedAhead: refreshed.blocks,
                             concurrentSeconds: Double(pauseStarted &- refreshStarted) / 1e9, pauseSeconds: pauseSeconds,
                             parkSeconds: Double(parked &- pauseStarted) / 1e9)
    }

    /// What the pause did for one process: a scan, or a rescan to mark after it.
    enum PausedScan {
        case scanned(PageTableRoot, SpaceScan)
        case prepared(PreparedScan)
    }

    /// The exact phase: scans every live process that has outstanding blocks ("periodic" names each
    /// scan full or incremental from what the cache could reuse), or takes what its rescan needs to
    /// be marked after the pause (`prepareAfterPause`), until `deadline` (monotonic ns).
    func scanAll(_ guest: PausedGuest, pauseStarted: UInt64, deadline: UInt64) -> [PausedScan] {
        beforeScan.withLock { $0 }?(guest.memory)
        let wanted = ledger.scannableSpaces()
        guard !wanted.isEmpty, let view = try? KernelView(kernel: kernel, memory: guest.memory, vcpus: guest.vcpus),
              let tasks = try? view.tasks(), let current = try? view.currentTasks() else { return [] }
        let processes = Self.userAddressSpaces(among: tasks)
        var scans: [PausedScan] = []
        let first = state.withLock { s in
            s.lastFrames = []
            // Spaces that ended, or have no blocks left, need no kept references.
            s.tables = s.tables.filter { wanted.contains($0.key) }
            s.verdicts = s.verdicts.filter { wanted.contains($0.key) }
            return s.nextRoundStart
        }
        for k in processes.indices {
            let (mm, threads) = processes[(first + k) % processes.count]
            guard ScanBudget.monotonicNanoseconds() < deadline else {
                // Out of time: the next round starts here.
                state.withLock { $0.nextRoundStart = (first + k) % processes.count }
                break
            }
            guard let root = try? view.pageTableRoot(ofMM: mm), wanted.contains(root) else { continue }
            let prepared = state.withLock { s in
                prepareAfterPause(&s, root: root, mm: mm, threads: threads, view: view, current: current,
                                  pauseStarted: pauseStarted, deadline: deadline)
            }
            if let prepared {
                scans.append(.prepared(prepared))
            } else if let scan = scan(space: root, mm: mm, threads: threads, view: view, current: current, kind: "periodic",
                               pauseStarted: pauseStarted, deadline: deadline, recording: false) {
                scans.append(.scanned(root, scan))
                if !scan.complete { state.withLock { $0.nextRoundStart = (first + k + 1) % processes.count } }
            }
        }
        return scans
    }

    /// The user address spaces among `tasks`: each `mm` with its threads (kernel threads and tasks
    /// without an mm left out), by `mm` ascending, the order a round takes them in.
    static func userAddressSpaces(among tasks: [GuestTask]) -> [(mm: UInt64, threads: [GuestTask])] {
        var byMM: [UInt64: [GuestTask]] = [:]
        for task in tasks where task.mm != 0 && !task.isKernelThread { byMM[task.mm, default: []].append(task) }
        return byMM.sorted(by: { $0.key < $1.key }).map { (mm: $0.key, threads: $0.value) }
    }
}

/// What one `scanLiveProcesses` round did.
public struct LiveScanRound: Sendable {
    public var scans: [SpaceScan]
    /// Frames read again while the guest ran (the concurrent phase).
    public var pagesRefreshed: Int
    /// Blocks whose references were resolved again while the guest ran (the concurrent phase).
    public var blocksResolvedAhead: Int
    /// How long the concurrent phase took.
    public var concurrentSeconds: Double
    /// From asking for the pause to the end of the exact phase.
    public var pauseSeconds: Double
    /// From asking for the pause to every vCPU parked (part of `pauseSeconds`).
    public var parkSeconds: Double
}
