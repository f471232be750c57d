import AllocationLedger
import AllocationTracing
import Foundation
import GuestInterface
import Introspection
import LeakAnalysis
import LeakJournal
import MetricsExport
import Reachability
import Synchronization

/// User-space allocation tracking of one running guest, end to end: the tracker the guest's
/// vCPUs call (given to the guest before it runs), page-write logging and periodic scans once
/// the tracker armed, `detach`, and the reports made from the ledger.
public final class TrackingSession: Sendable {
    public let tracking: UserTracking
    public let guest: any InspectableGuest
    public let options: TrackingOptions
    let output: SessionOutput
    let builder: LeakReportBuilder
    /// One scan at a time (timer, SIGUSR1 and `leakvisor report` may ask together).
    let scanning = Mutex(())
    let timer = Mutex<TimerBox?>(nil)
    /// Which scans say their progress line.
    let scanLines = Mutex(ScanLineThrottle())
    /// Where every scan's report goes as a sample (nil: no journal, or it could not be opened).
    public let journal: JournalRecording?
    /// Whether a journal sample for process exits is already on its way (exits close together share one).
    let exitSamplePending = Mutex(false)
    /// The live metrics: scans are counted here as they happen, the rest is read at each scrape.
    public let metrics = MetricsExporter()
    /// The kernel tracking beside this one (`--track all`): its section goes into every report.
    public let kernelTracking: KernelTrackingSession?

    /// A timer source, handed between threads only under the mutex.
    final class TimerBox: @unchecked Sendable {
        // SAFETY: the source is only created, cancelled and dropped under `timer`'s lock.
        let source: any DispatchSourceTimer
        init(_ source: any DispatchSourceTimer) { self.source = source }
    }

    /// Commands of the default image's own tools (busybox, lv-exit that reports the command's
    /// status, and lv-payload that runs it on a `--root` disk), left out of reports unless
    /// `includeImageTools`.
    public static let imageTools: Set<String> = ["busybox", "lv-exit", "lv-payload"]

    public var tracker: UserAllocationTracker { tracking.tracker }
    public var scanner: ReachabilityScanner { tracking.scanner }

    /// Loads the guest kernel's symbols and BTF and assembles the tracker and scanner (saying how
    /// long the kernel took to read), or continues `restoring`, the state saved with a snapshot of
    /// a tracked guest. Give `tracker` to the guest before it runs, then make the session.
    public static func prepare(vmlinux: String, kernelSymbolFile: String?, files: GuestSymbolFiles,
                               options: TrackingOptions, output: SessionOutput, restoring: TrackingSnapshot? = nil) throws -> UserTracking {
        let started = Date()
        let kernel = try GuestKernel.load(vmlinux: vmlinux, symbolFile: kernelSymbolFile)
        output.line("tracking user allocations; guest kernel symbols and BTF read in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        let clock = restoring.map { TrackerClock(continuingFrom: $0.elapsedNanoseconds) } ?? TrackerClock()
        let tracking = UserTracking(kernel: kernel, files: files, includeOperators: options.includeOperators,
                                    staleAfter: options.staleAfterSeconds, clock: clock, monitorRegion: options.monitorRegion,
                                    exitlessRingRecords: options.exitlessRingRecords)
        tracking.tracker.setStackDepth(options.stackDepth)
        tracking.scanner.limits = options.scanLimits
        tracking.scanner.heuristics = options.heuristics
        if let restoring {
            try tracking.restore(restoring)
            output.line("tracking continues from the snapshot at \(String(format: "%.1f", clock.seconds)) s: \(restoring.tracker.breakpointCount)"
                        + " allocator breakpoint(s), \(restoring.tracker.callsInFlight) call(s) in flight, "
                        + "\(tracking.ledger.scannableSpaces().count) process(es) with outstanding blocks")
        }
        return tracking
    }

    /// A session over `guest`, whose vCPUs call `tracking.tracker`. Make it before the guest runs:
    /// it starts scanning when the tracker reports that it armed.
    public init(tracking: UserTracking, guest: any InspectableGuest, files: GuestSymbolFiles, options: TrackingOptions,
                output: SessionOutput, kernelTracking: KernelTrackingSession? = nil) {
        self.tracking = tracking
        self.kernelTracking = kernelTracking
        self.guest = guest
        self.options = options
        self.output = output
        var builder = LeakReportBuilder(files: files)
        builder.staleAfterSeconds = options.staleAfterSeconds
        self.builder = builder
        let say = output.line
        journal = options.journalPath.flatMap { path in
            JournalRecording.open(path: path, identity: options.runIdentity ?? RunIdentity(leakvisorVersion: "unknown", commandLine: [],
                                                                                           kernel: nil, image: nil), say: say)
        }
        if journal != nil {
            tracking.exits.observe { [weak self] in self?.sampleAfterExit() }
        }
        // Restored from a snapshot of a tracked guest: armed already.
        if case .success? = tracking.tracker.armingOutcome {
            startScanning()
            return
        }
        tracking.tracker.onArmed { [weak self] outcome in
            switch outcome {
            case .success(let summary):
                say("armed: kernel hooks on mmap_region and exit_mmap, \(summary.sites) allocator breakpoints"
                    + (summary.files.isEmpty ? "" : " in \(summary.files.joined(separator: ", "))") + "; more as programs map libraries")
                self?.startScanning()
            case .failure(let error):
                say("allocation tracking could not start: \(error)")
            }
        }
    }

    /// The report now; `final` closes the live address spaces first (the guest stopped).
    public func report(final: Bool, allProcesses: Bool? = nil) -> LeakReport {
        // Releases the exitless path recorded and no trap has drained yet.
        tracker.drainRings(memory: guest.memory)
        if final { tracker.ledger.retireAll(as: .guestStopped, time: UInt64(tracker.seconds * 1e9)) }
        var builder = self.builder
        if !(allProcesses ?? options.includeImageTools) { builder.excludedCommands = Self.imageTools }
        var report = builder.build(tracker.ledger.snapshot(), seconds: tracker.seconds)
        report.kernel = kernelTracking?.report()
        return options.reportFilter?(report) ?? report
    }

    /// After arming: page-write logging for incremental scans, and the periodic timer.
    func startScanning() {
        do {
            try scanner.useWriteLog(of: guest)
        } catch {
            output.line("page-write logging is unavailable (\(error)); every scan reads all memory it covers")
        }
        guard let interval = options.scanInterval else { return }
        let source = DispatchSource.makeTimerSource(queue: .global())
        source.schedule(deadline: .now() + interval, repeating: interval)
        source.setEventHandler { [weak self] in self?.scanNow(reason: "every \(Self.seconds(interval))") }
        source.resume()
        let box = TimerBox(source)
        timer.withLock { $0 = box }
    }

    func stopScanning() {
        timer.withLock { $0?.source.cancel(); $0 = nil }
    }

    /// `leakvisor detach`: puts back every byte the tracker changed (guest paused), then turns off
    /// what only tracking needed: the periodic scans and the guest page-write log. The vCPUs drop
    /// the #BP gate breakpoint at their next exit (the tracker no longer wants user traps); the
    /// #GP/#PF gates stay where the host needs them to complete system calls.
    public func detach() throws -> ArmingSummary {
        try scanning.withLock { _ in
            var summary = try tracker.detach(from: guest, timeout: 10)
            stopScanning()
            do {
                if let reader = scanner.stopUsingWriteLog() { try guest.stopWriteLog(reader) }
            } catch {
                summary.notes.append("the page-write log could not be turned off: \(error)")
            }
            return summary
        }
    }

    /// Scans every live tracked process now: the concurrent part while the guest runs, then the
    /// exact part with the guest paused. Says one progress line, and writes the report after the
    /// scan to the journal as a sample when `record`.
    public func scanNow(reason: String, record: Bool = true) {
        // After detach the ledger no longer follows the guest: nothing to scan.
        guard tracker.armingOutcome != nil, tracker.wantsUserTraps else { return }
        scanning.withLock { _ in
            let round = scanner.scanLiveProcesses(of: guest, pauseTimeout: 30)
            if !round.scans.isEmpty { metrics.recordScan(pauseSeconds: round.pauseSeconds) }
            if record { recordSample(report(final: false), reason: reason) }
            guard let line = progressLine(round, reason: reason) else { return }
            output.line(line)
        }
    }

    /// A journal sample shortly after a process exit, off the vCPU that reported it (the ledger
    /// retires the process when the exit hook returns); exits within the delay share the sample.
    func sampleAfterExit() {
        guard exitSamplePending.withLock({ pending in defer { pending = true }; return !pending }) else { return }
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { [weak self] in
            guard let self else { return }
            self.exitSamplePending.withLock { $0 = false }
            self.scanning.withLock { _ in
                self.recordSample(self.report(final: false), reason: "process exit", unlessUnchanged: true)
            }
        }
    }

    /// Writes `report` to the journal as a sample, unless there is none or it was closed (the
    /// final sample was written).
    func recordSample(_ report: @autoclosure () -> LeakReport, reason: String, final: Bool = false, unlessUnchanged: Bool = false) {
        guard let journal, !journal.isClosed else { return }
        journal.record(report(), reason: reason, final: final, unlessUnchanged: unlessUnchanged)
    }

    /// The progress line of a scan round, or nil when it is to stay quiet: nothing was scanned,
    /// or a periodic scan found what the last one found (said again at least every 6th time).
    func progressLine(_ round: LiveScanRound, reason: String) -> String? {
        let scans = round.scans
        guard !scans.isEmpty else { return nil }
        var leaks = 0, read = 0, reused = 0
        var bytes: UInt64 = 0
        for scan in scans {
            leaks += scan.verdicts.values.filter { $0.reachability == .directLeak }.count
            read += scan.figures.pagesRead
            reused += scan.figures.pagesReused
            bytes = bytes.addingSaturated(scan.figures.bytesScanned)
        }
        let incomplete = scans.filter { !$0.complete }.count
        let findings = "\(scans.count) process(es): \(leaks) direct leak(s)"
            + (incomplete > 0 ? ", \(incomplete) scan(s) INCOMPLETE (limits reached; see the report's notes)" : "")
        guard scanLines.withLock({ $0.shouldSay(findings: findings, periodic: reason.hasPrefix("every")) }) else { return nil }
        return "scan (\(reason)) of \(findings); \(bytes / 1024) KiB scanned,"
            + " \(round.pagesRefreshed) page(s) re-read while running, \(read) in the pause, \(reused) reused; pause "
            + String(format: "%.1f ms", round.pauseSeconds * 1000)
    }

    static func seconds(_ value: Double) -> String {
        value >= 1 ? String(format: "%g s", value) : String(format: "%g ms", value * 1000)
    }
}
