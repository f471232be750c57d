import AllocationTracing
import LeakAnalysis

/// What one scrape reports: the session's figures at that moment, as plain values (made from a
/// `LeakReport` or from the ledger directly; see `Monitor`'s collection).
public struct MetricsSample: Sendable {
    /// Outstanding blocks of one process (one address space) in the latest ledger state.
    public struct Process: Sendable, Equatable {
        public var pid: Int32?
        public var command: String?
        /// `live`, `exited` or `guest stopped` (`AddressSpaceEnd`'s raw value).
        public var state: String
        public var outstanding: BlockTotal

        public init(pid: Int32?, command: String?, state: String, outstanding: BlockTotal) {
            self.pid = pid
            self.command = command
            self.state = state
            self.outstanding = outstanding
        }
    }

    public var processes: [Process]
    /// Outstanding blocks by the class the latest scan gave them (never scanned: not scanned).
    public var classes: ClassTotals
    /// The tracker's trap counts so far.
    public var counters: TrackerCounters
    /// Live address spaces the ledger follows.
    public var trackedProcesses: Int
    /// Journal samples written (nil: no journal).
    public var journalSamples: Int?
    /// Seconds since tracking started.
    public var trackingSeconds: Double

    public init(processes: [Process], classes: ClassTotals, counters: TrackerCounters, trackedProcesses: Int,
                journalSamples: Int?, trackingSeconds: Double) {
        self.processes = processes
        self.classes = classes
        self.counters = counters
        self.trackedProcesses = trackedProcesses
        self.journalSamples = journalSamples
        self.trackingSeconds = trackingSeconds
    }

    /// The figures of `report` (its processes and class totals), with the tracker's counts.
    public init(report: LeakReport, counters: TrackerCounters, journalSamples: Int? = nil) {
        self.init(processes: report.processes.map {
                      Process(pid: $0.pid, command: $0.command, state: $0.state.rawValue,
                              outstanding: BlockTotal(blocks: $0.outstandingBlocks, bytes: $0.outstandingBytes))
                  },
                  classes: report.summary.classes, counters: counters,
                  trackedProcesses: report.processes.filter { $0.state == .live }.count,
                  journalSamples: journalSamples, trackingSeconds: report.seconds)
    }

    /// Outstanding blocks and bytes over every process.
    public var outstanding: BlockTotal { processes.reduce(BlockTotal()) { $0 + $1.outstanding } }
}
