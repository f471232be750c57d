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
    struct State: Sendable {
        let cache = FrameCandidateCache(window: .user)
        /// Per live address space: what its blocks point at, kept between its scans.
        var tables: [PageTableRoot: BlockReferenceTable] = [:]
        /// Per live address space: its verdicts as of its last scan.
        var verdicts: [PageTableRoot: SpaceVerdicts] = [:]
        var history = PageWriteHistory()
        var writes: (any GuestWriteTracking)?
        /// Frames the previous scans used: what the concurrent phase refreshes.
        var lastFrames: Set<UInt64> = []
        var pagesDirtiedSinceScan = 0
        var notes: [String] = []
        var limits = ScanLimits()
        /// valgrind's leak-check heuristics in use (all four by default, as in valgrind).
        var heuristics = LeakCheckHeuristics.all
        /// Finds `exit` in exiting processes (nil: no host files known, the stack rule without it).
        var exitLocator: ExitFunctionLocator?
        /// Where the next round starts in the list of processes, so a round cut short by its
        /// limits does not always leave out the same ones.
        var nextRoundStart = 0
        /// While rescans prepared in a pause wait for their marking (their tables out of `tables`):
        /// what was harvested meanwhile, for those tables once they are done.
        var deferred: DeferredWrites?
        /// The tables of the rescans prepared in the pause, until their marking (out of `tables`,
        /// so that no harvest changes them before it).
        var preparedTables: [PageTableRoot: BlockReferenceTable] = [:]
        /// The guest's paging mode, as the last scan found it (for the concurrent phase's walks).
        var pagingMode: PageTableMode?

        /// Forgets every cached frame, kept reference and kept verdict: the next scan reads and
        /// builds everything.
        mutating func invalidateAll() {
            deferred?.all = true
            cache.invalidateAll()
            for root in Array(tables.keys) { tables[root]?.invalidateAll() }
            verdicts = [:]
        }

        /// Bytes the frame cache and the reference tables hold.
        var storedBytes: UInt64 { tables.values.reduce(cache.storedBytes) { $0.addingSaturated($1.storedBytes) } }
    }

    /// Frames harvested while prepared rescans were out of the map (`all`: everything may have changed).
    struct DeferredWrites: Sendable {
        var frames: [UInt64] = []
        var all = false
    }

    let state = Mutex(State())
    /// Called at the start of each round's pause, before the ledger's blocks are read: brings the
    /// ledger up to date with what the guest recorded without a trap (the exitless path's rings).
    let beforeScan = Mutex<(@Sendable (GuestMemory) -> Void)?>(nil)
    /// The part of the pause limit kept for the work after the marking (verdicts, ledger update).
    static let pauseReserve = 0.1
    let kernel: GuestKernel
    let ledger: AllocationLedger
    let clock: TrackerClock
    /// Nanoseconds without a write after which a referenced block counts as stale.
    public let staleAfter: UInt64

    /// Sets what runs at the start of each round's pause (`beforeScan`).
    public func setBeforeScan(_ body: @escaping @Sendable (GuestMemory) -> Void) {
        beforeScan.withLock { $0 = body }
    }

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

    /// Which interior pointers count as start pointers (valgrind's `--leak-check-heuristics`) in
    /// every later scan.
    public var heuristics: LeakCheckHeuristics {
        get { state.withLock { $0.heuristics } }
        set { state.withLock { $0.heuristics = newValue } }
    }

    /// Looks up libc's `exit` in the host copies of the guest's files, so that an exiting thread's
    /// stack is scanned only from where `exit` was entered (`ExitFrame`).
    public func useSymbolFiles(_ files: GuestSymbolFiles) {
        state.withLock { $0.exitLocator = ExitFunctionLocator(files: files) }
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
            s.invalidateAll()
            return
        }
        do {
            let written = try writes.harvest()
            s.cache.invalidate(written.frames)
            s.deferred?.frames += written.frames
            // Blocks whose references were dropped are read again: the concurrent phase reads
            // their frames first.
            for root in Array(s.tables.keys) {
                if let dropped = s.tables[root]?.invalidate(written.frames) { s.lastFrames.formUnion(dropped) }
            }
            s.history.record(written.frames, at: clock.now)
            s.pagesDirtiedSinceScan += written.frames.count
        } catch {
            s.invalidateAll()
            // Both harvests of a round (while running, then paused) may fail alike: say it once.
            let note = "dirty log unavailable (\(error)): full scan"
            if !s.notes.contains(note) { s.notes.append(note) }
        }
    }

    /// The concurrent phase, while the guest runs: harvest, read again the frames the last scans
    /// used that were written since, then resolve again the kept tables' blocks whose entries were
    /// dropped (`BlockReferenceTable.resolveAhead`), until `deadline` (monotonic ns) or the memory
    /// limit. What is written during this, or not done by then, is done by the exact phase.
    func refresh(memory: GuestMemory, deadline: UInt64) -> (pages: Int, blocks: Int) {
        state.withLock { s in
            harvest(&s)
            let before = s.cache.framesRead
            for frame in s.lastFrames where !s.cache.contains(frame) {
                guard ScanBudget.monotonicNanoseconds() < deadline, s.cache.storedBytes < s.limits.memoryBytes else { break }
                _ = try? s.cache.candidates(frame: frame, memory: memory)
            }
            let pages = s.cache.framesRead - before
            var blocks = 0
            guard let mode = s.pagingMode, s.writes != nil else { return (pages, blocks) }
            for root in Array(s.tables.keys) {
                guard var table = s.tables.removeValue(forKey: root) else { continue }
                var budget = ScanBudget(memoryBytes: s.limits.memoryBytes)
                budget.deadline = deadline
                var source = ProcessMemorySource(space: AddressSpace(memory: memory, root: root, mode: mode), cache: s.cache,
                                                 budget: budget)
                source.heldElsewhere = s.storedBytes &- s.cache.storedBytes
                blocks += table.resolveAhead(memory: &source, heuristics: s.heuristics, deadline: deadline)
                table.noteUpperTables(source.upperTables)
                s.tables[root] = table
            }
            return (pages, blocks)
        }
    }

    /// Drops every cached frame and the list the concurrent phase refreshes: the next round reads
    /// everything in its pause, a full scan (for benchmarks).
    public func forgetCache() {
        state.withLock { s in
            s.invalidateAll()
            s.tables = [:]
            s.lastFrames = []
        }
    }
}

