import Monitor
import AllocationLedger
import AllocationTracing
import Foundation
import GuestInterface
import Introspection
import LeakAnalysis
import Reachability
import Synchronization
import VMM

/// `run --track user`: the tracker the machine's vCPUs call, and the reports made from its
/// ledger (on stderr at exit and on SIGUSR1, as JSON with --report).
final class AllocationSession: Sendable {
    let tracker: UserAllocationTracker
    let scanner: ReachabilityScanner
    let builder: LeakReportBuilder
    let includeImageTools: Bool
    let jsonPath: String?
    let showReachable: Bool
    let scanInterval: Double?
    /// The machine, once it exists (scans pause it).
    let machine = Mutex<Machine?>(nil)
    /// One scan at a time (timer, SIGUSR1 and `leakvisor report` may ask together).
    let scanning = Mutex(())
    let timer = Mutex<TimerBox?>(nil)
    /// The last periodic scan's findings and how many scans printed nothing since: a scan prints
    /// its line when its findings changed, and at least every 6th time.
    let lastScanLine = Mutex<(text: String, quiet: Int)>(("", 0))

    /// A timer source, handed between threads only under the mutex.
    final class TimerBox: @unchecked Sendable {
        let source: any DispatchSourceTimer
        init(_ source: any DispatchSourceTimer) { self.source = source }
    }

    /// Commands of the default image's own tools (busybox, and lv-exit that reports the command's
    /// status), left out of reports unless --report-all-processes.
    static let imageTools: Set<String> = ["busybox", "lv-exit"]

    init(options: RunCommand, files: GuestSymbolFiles, vmlinux: String?) throws {
        guard let vmlinux else { throw SessionError.noKernelImage }
        let started = Date()
        let kernel = try GuestKernel.load(vmlinux: vmlinux, symbolFile: options.kernelSymbols.map(HostPathArgument.absolute))
        Self.say("tracking user allocations; guest kernel symbols and BTF read in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        let tracking = UserTracking(kernel: kernel, files: files, includeOperators: options.track != .userMalloc,
                                    staleAfter: options.staleAfter.seconds)
        tracker = tracking.tracker
        scanner = tracking.scanner
        scanner.limits = options.scanLimits
        var builder = LeakReportBuilder(files: files)
        builder.staleAfterSeconds = options.staleAfter.seconds
        self.builder = builder
        showReachable = options.showReachable
        scanInterval = options.scanEvery?.seconds
        includeImageTools = options.reportAllProcesses
        jsonPath = options.reportPath.map(HostPathArgument.absolute)
        tracker.onArmed { [weak self] outcome in
            switch outcome {
            case .success(let summary):
                Self.say("armed: kernel hooks on mmap_region and exit_mmap, \(summary.sites) allocator breakpoints"
                         + (summary.files.isEmpty ? "" : " in \(summary.files.joined(separator: ", "))") + "; more as programs map libraries")
                self?.startScanning()
            case .failure(let error):
                Self.say("allocation tracking could not start: \(error)")
            }
        }
    }

    enum SessionError: Error, CustomStringConvertible {
        case noKernelImage
        var description: String { "--track needs the guest kernel's vmlinux (give --vmlinux when booting a bzImage)" }
    }

    /// The report now; `final` closes the live address spaces first (the guest stopped).
    func report(final: Bool, allProcesses: Bool? = nil) -> LeakReport {
        if final { tracker.ledger.retireAll(as: .guestStopped, time: UInt64(tracker.seconds * 1e9)) }
        var builder = self.builder
        if !(allProcesses ?? includeImageTools) { builder.excludedCommands = Self.imageTools }
        return builder.build(tracker.ledger.snapshot(), seconds: tracker.seconds)
    }

    /// Called once the machine exists.
    func attach(_ machine: Machine) {
        self.machine.withLock { $0 = machine }
    }

    /// After arming: page-write logging for incremental scans, and the --scan-every timer.
    func startScanning() {
        guard let machine = machine.withLock({ $0 }) else { return }
        do {
            try scanner.useWriteLog(of: machine)
        } catch {
            Self.say("page-write logging is unavailable (\(error)); every scan reads all memory it covers")
        }
        guard let interval = scanInterval else { return }
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
    func detach(_ machine: Machine) throws -> ArmingSummary {
        try scanning.withLock { _ in
            var summary = try machine.withGuestPaused { tracker.disarm($0) }
            stopScanning()
            scanner.stopUsingWriteLog()
            do {
                try machine.pageWrites.disable()
            } catch {
                summary.notes.append("the page-write log could not be turned off: \(error)")
            }
            return summary
        }
    }

    /// Scans every live tracked process now: the concurrent part while the guest runs, then the
    /// exact part with the guest paused. Prints one progress line.
    func scanNow(reason: String) {
        // After detach the ledger no longer follows the guest: nothing to scan.
        guard let machine = machine.withLock({ $0 }), tracker.armingOutcome != nil, tracker.wantsUserTraps else { return }
        scanning.withLock { _ in
            let round = scanner.scanLiveProcesses(of: machine, pauseTimeout: 30)
            let scans = round.scans
            guard !scans.isEmpty else { return }
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
            let quiet = lastScanLine.withLock { last -> Bool in
                let repeatOK = reason.hasPrefix("every") && last.text == findings && last.quiet < 5
                last = (findings, repeatOK ? last.quiet + 1 : 0)
                return repeatOK
            }
            guard !quiet else { return }
            Self.say("scan (\(reason)) of \(findings); \(bytes / 1024) KiB scanned,"
                     + " \(round.pagesRefreshed) page(s) re-read while running, \(read) in the pause, \(reused) reused; pause "
                     + String(format: "%.1f ms", round.pauseSeconds * 1000))
        }
    }

    static func seconds(_ value: Double) -> String {
        value >= 1 ? String(format: "%g s", value) : String(format: "%g ms", value * 1000)
    }

    func printReport(final: Bool) {
        if !final { scanNow(reason: "SIGUSR1") }
        let text = LeakReportText.render(report(final: final), showReachable: showReachable)
        MonitorOutput.write(text)
    }

    /// The final report: printed, and written as JSON when asked. `written` is false if the JSON
    /// could not be written.
    func finish() -> (written: Bool, report: LeakReport) {
        stopScanning()
        let report = self.report(final: true)
        var text = LeakReportText.render(report, showReachable: showReachable)
        let s = tracker.statistics
        text += "leakvisor: \(s.entries) allocation call(s) and \(s.releases) release(s) trapped (\(s.nestedEntries) nested),"
            + " \(s.sitesArmed) breakpoint(s) armed, \(s.mmapHooks) mmap and \(s.exitHooks) exit hook(s)"
            + (s.unreadableCalls > 0 ? ", \(s.unreadableCalls) call(s) not tracked (unreadable stack)" : "")
            + (s.faultsDelivered > 0 ? ", \(s.faultsDelivered) fault(s) delivered to the guest in place of an access its thread could not make" : "")
            + (s.trampolineFaultsDeclined > 0 ? ", \(s.trampolineFaultsDeclined) fault(s) at the return trampoline not taken as a return" : "") + "\n"
        for note in tracker.diagnostics.prefix(20) { text += "leakvisor: note: \(note)\n" }
        if case .failure(let error)? = tracker.armingOutcome {
            if case TrackerError.disarmed = error {
                text += "leakvisor: allocation tracking was stopped by detach; the report covers the time before\n"
            } else {
                text += "leakvisor: allocation tracking did not run: \(error)\n"
            }
        }
        MonitorOutput.write(text)
        guard let jsonPath else { return (true, report) }
        do {
            try ReportFile.writeJSON(report, to: jsonPath)
            return (true, report)
        } catch {
            Self.say("cannot write the report to \(jsonPath): \(error)")
            return (false, report)
        }
    }

    static func say(_ text: String) { MonitorOutput.say(text) }
}
