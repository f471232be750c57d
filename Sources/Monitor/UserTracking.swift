import AllocationLedger
import AllocationTracing
import GuestMemory
import Introspection
import LeakAnalysis

/// User-space allocation tracking of one guest, assembled: one ledger and clock, the tracer that
/// feeds them from traps, and the scanner that classifies their blocks, wired so that each
/// process is scanned as it exits (before the ledger retires it).
public struct UserTracking: Sendable {
    public let ledger: AllocationLedger
    /// The guest kernel's symbols and layouts, as loaded for this tracking.
    public let kernel: GuestKernel
    public let clock: TrackerClock
    public let tracker: UserAllocationTracker
    public let scanner: ReachabilityScanner
    /// Told after each exiting process was scanned (the session writes a journal sample then);
    /// only with `scansAtExit`.
    public let exits = ExitObserver()

    /// - Parameters:
    ///   - includeOperators: arm C++ `new`/`delete` too (else only the C allocator).
    ///   - scansAtExit: scan each process as it exits.
    ///   - staleAfter: seconds without a write after which a referenced block counts as stale.
    ///   - clock: the tracker's clock (one that goes on from a snapshot's time when restoring).
    ///   - monitorRegion: the machine's monitor region, for the exitless release path (nil: traps only).
    public init(kernel: GuestKernel, files: GuestSymbolFiles, includeOperators: Bool = true, scansAtExit: Bool = true,
                staleAfter: Double = 60, clock: TrackerClock = TrackerClock(), monitorRegion: MonitorRegion? = nil,
                exitlessRingRecords: Int = UserAllocationTracker.exitlessRingRecords) {
        let ledger = AllocationLedger()
        self.kernel = kernel
        let scanner = ReachabilityScanner(kernel: kernel, ledger: ledger, clock: clock,
                                          staleAfter: UInt64(max(0, staleAfter) * 1e9))
        self.ledger = ledger
        self.clock = clock
        self.scanner = scanner
        scanner.useSymbolFiles(files)
        var onExit: (@Sendable (AddressSpaceExit) -> Void)?
        if scansAtExit {
            let exits = self.exits
            onExit = { exit in
                _ = scanner.scan(space: exit.root, mm: exit.mm, threads: exit.threads, exitedThreads: exit.exitedThreads,
                                 view: exit.view, current: exit.current, kind: ReachabilityScanner.exitKind)
                exits.notify()
            }
        }
        let tracker = UserAllocationTracker(kernel: kernel, files: files, ledger: ledger, clock: clock,
                                            includeOperators: includeOperators, onAddressSpaceExit: onExit,
                                            monitorRegion: monitorRegion, exitlessRingRecords: exitlessRingRecords)
        self.tracker = tracker
        if tracker.usesExitlessPath {
            // A round's verdicts must see every release the rings hold.
            scanner.setBeforeScan { memory in tracker.drainRings(memory: memory) }
        }
    }
}
