import GuestMemory
import AllocationTracing
import LeakAnalysis
import LeakJournal
import Reachability

/// How a `TrackingSession` tracks a guest and reports: the plain values the `run` command's flags give.
public struct TrackingOptions: Sendable {
    /// Arm C++ `new`/`delete` too (else only the C allocator).
    public var includeOperators = true
    /// Whether releases take the exitless path (`run --exitless`).
    public var exitless = false
    /// The machine's monitor region when they do (made with the machine).
    public var monitorRegion: MonitorRegion?
    /// Records in each process's event ring (`--exitless-ring-records`; small ones fill, for tests).
    public var exitlessRingRecords = UserAllocationTracker.exitlessRingRecords
    /// Frames kept per allocation stack, the allocator's own included (`--stack-depth`; valgrind's 12).
    public var stackDepth = UserAllocationTracker.defaultStackDepth
    /// Seconds without a write after which a referenced block counts as stale.
    public var staleAfterSeconds: Double = 60
    /// Limits of every scan (pause, total time, memory).
    public var scanLimits = ScanLimits()
    /// valgrind's leak-check heuristics every scan uses (`--leak-check-heuristics`; all by default).
    public var heuristics = LeakCheckHeuristics.all
    /// Scan the live processes this often (nil: only as they exit and when asked).
    public var scanInterval: Double?
    /// List still-reachable blocks in the text report.
    public var showReachable = false
    /// Keep the image's own tools (busybox, lv-exit) in reports.
    public var includeImageTools = false
    /// Also write the final report as JSON to this absolute path.
    public var jsonPath: String?
    /// Applied to every report before it is printed or written (`run --suppressions`).
    public var reportFilter: (@Sendable (LeakReport) -> LeakReport)?
    /// Write the journal (every scan's report and per-site samples) to this absolute path.
    public var journalPath: String?
    /// What the journal names as its producer.
    public var runIdentity: RunIdentity?

    public init() {}
}

/// Where a session's messages go: `line` takes one monitor line (without the `leakvisor: `
/// prefix or newline), `text` takes finished text such as a report, verbatim.
public struct SessionOutput: Sendable {
    public let line: @Sendable (String) -> Void
    public let text: @Sendable (String) -> Void

    public init(line: @escaping @Sendable (String) -> Void, text: @escaping @Sendable (String) -> Void) {
        self.line = line
        self.text = text
    }

    /// Writes the final report as JSON to `path` (atomically) when one is given; says why not and
    /// returns false when it cannot.
    func writeFinalJSON(_ report: LeakReport, to path: String?) -> Bool {
        guard let path else { return true }
        do {
            try ReportFile.writeJSON(report, to: path)
            return true
        } catch {
            line("cannot write the report to \(path): \(error)")
            return false
        }
    }
}
