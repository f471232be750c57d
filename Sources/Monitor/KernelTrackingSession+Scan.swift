import AllocationLedger
import Foundation
import GuestInterface
import GuestMemory
import Introspection
import LeakAnalysis
import Reachability

/// What the kernel leak scans run on.
struct KernelScanSetup: Sendable {
    var guest: (any InspectableGuest)?
    var interval: Double?
    var writeLog: (any GuestWriteTracking)?
    var timer: TrackingSession.TimerBox?
}

/// What the kernel leak scans keep between scans.
struct KernelScanResults: Sendable {
    var scanner = KernelLeakScanner()
    /// Kernel-half candidate words of the frames the latest scan read; each scan drops the frames
    /// the write log says were written since the previous one (all of them without a log).
    let cache = FrameCandidateCache(window: .kernel)
    var latest: KernelReportBuilder.LatestScan?
    /// Kernel addresses symbolized during pauses (module frames need the paused guest's memory),
    /// valid while the module list they were read under stays the same.
    var frames: [UInt64: ReportFrame] = [:]
    var moduleList: [String] = []
    /// The text of the latest progress line, to stay quiet while nothing changes.
    var lastLine = ""
}

extension KernelTrackingSession {
    /// Scans `guest` for kernel leaks once the tracker armed: every `interval` seconds (nil: only
    /// when asked), with kmemleak's `rules`. Call before the guest runs.
    public func scan(_ guest: any InspectableGuest, every interval: Double?, rules: KernelLeakRules = KernelLeakRules()) {
        scans.withLock {
            $0.guest = guest
            $0.interval = interval
        }
        scanning.withLock { $0.scanner.rules = rules }
    }

    /// After arming: the guest's write log (objects written since the last scan are not reported)
    /// and the timer.
    func startScanning() {
        let (guest, interval) = scans.withLock { ($0.guest, $0.interval) }
        guard let guest else { return }
        do {
            let reader = try guest.startWriteLog()
            scans.withLock { $0.writeLog = reader }
        } catch {
            output.line("kernel scans: page-write log unavailable (\(error)); objects written between scans cannot be told apart")
        }
        guard let interval else { return }
        let source = DispatchSource.makeTimerSource(queue: .global())
        source.schedule(deadline: .now() + interval, repeating: interval)
        source.setEventHandler { [weak self] in self?.scanNow(reason: "every \(TrackingSession.seconds(interval))") }
        source.resume()
        scans.withLock { $0.timer = TrackingSession.TimerBox(source) }
    }

    /// Stops the periodic scans (the end of a run, detach).
    public func stopScanning() {
        scans.withLock { $0.timer?.source.cancel(); $0.timer = nil }
    }

    /// Scans the kernel now, with the guest paused: the ledger's live objects against the kernel's
    /// roots and the loaded modules' data; says a progress line when the outcome changed.
    public func scanNow(reason: String) {
        guard case .success? = tracker.armingOutcome, tracker.patchesInPlace > 0 else { return }
        scanning.withLock { results in
            guard let guest = scans.withLock({ $0.guest }) else { return }
            let started = ScanBudget.monotonicNanoseconds()
            do {
                let line = try guest.withGuestPaused(timeout: 30) { paused in
                    try scanPaused(paused, into: &results, started: started, reason: reason)
                }
                if let line { output.line(line) }
            } catch {
                output.line("kernel scan (\(reason)) failed: \(error)")
            }
        }
    }

    /// The scan proper, in the pause; returns the progress line to say (nil: nothing new).
    private func scanPaused(_ paused: PausedGuest, into state: inout KernelScanResults, started: UInt64,
                            reason: String) throws -> String? {
        let view = try KernelView(kernel: tracker.kernel, memory: paused.memory, vcpus: paused.vcpus)
        let ledger = tracker.ledger
        let objects = ledger.liveObjects()
        let modules = (try? view.loadedModules()) ?? []
        // The frames written since the previous scan: for the written rule and the frame cache. No
        // log, or a harvest that failed: nil, and the scan reads everything (nothing is missed).
        let written: Set<UInt64>?
        do { written = try scans.withLock({ $0.writeLog }).map { Set(try $0.harvest().frames) } } catch { written = nil }
        let budget = ScanBudget(deadline: ScanBudget.monotonicNanoseconds() &+ 25_000_000_000)
        let result = state.scanner.scan(view: view, objects: objects.map(Self.scanObject), freedSlots: ledger.freedSlots,
                                        extraRoots: modules.flatMap(\.dataRanges), now: tracker.clock.seconds,
                                        writtenFrames: written, cache: state.cache, budget: budget)
        // Name the call sites and stacks of what is unreferenced while the module memory is at hand.
        let moduleList = modules.map { "\($0.name)@\($0.address)" }
        // A module list that changed, or a long soak's worth of names: symbolize afresh.
        if moduleList != state.moduleList || state.frames.count > 100_000 { state.frames = [:]; state.moduleList = moduleList }
        let lines = view.kernelLineTable()
        func name(_ pc: UInt64) {
            guard state.frames[pc] == nil else { return }
            let f = view.kernelFrame(pc, isReturnAddress: true, method: "kernel symbol", lines: lines, outerLine: true)
            state.frames[pc] = ReportFrame(pc: pc, function: f?.function, offset: f?.offset, file: f?.file, line: f?.line, module: f?.module)
        }
        for object in objects { name(object.callSite) }
        for verdict in result.verdicts where verdict.reachability == .directLeak || verdict.reachability == .indirectLeak {
            guard let object = ledger.object(at: verdict.object.address) else { continue }
            ledger.stack(object.stack).forEach(name)
        }
        let s = result.statistics
        let pause = Double(ScanBudget.monotonicNanoseconds() &- started) / 1e9
        state.latest = KernelReportBuilder.LatestScan(verdicts: result.verdicts, report: KernelScanReport(
            seconds: tracker.clock.seconds, scans: state.scanner.scans, objects: s.objects, rootBytes: s.totalRootBytes,
            bytesScanned: s.bytesScanned, writtenObjects: s.writtenObjects, pauseSeconds: pause, complete: result.complete,
            problems: result.problems, cache: s.cache))
        let reported = result.reported
        let held = result.verdicts.filter { !$0.reported && ($0.reachability == .directLeak || $0.reachability == .indirectLeak) }.count
        let summary = "\(reported.count) reported leak(s) of \(UInt64.saturatedSum(reported.map(\.object.size))) byte(s), \(held) held"
            + (result.complete ? "" : ", INCOMPLETE (\(result.problems.prefix(2).joined(separator: "; ")))")
        let say = summary != state.lastLine || !reason.hasPrefix("every")
        state.lastLine = summary
        guard say else { return nil }
        return "kernel scan \(state.scanner.scans) (\(reason)): \(s.objects) object(s), \(summary); \(s.totalRootBytes / 1024) KiB of roots,"
            + " \(s.writtenObjects) object(s) written since the previous scan"
            + (s.cache.map { "; \($0.framesRead) page(s) read, \($0.framesReused) reused (cache \($0.storedBytes >> 20) MiB)" } ?? "")
            + "; pause " + String(format: "%.0f ms", pause * 1000)
    }

    static func scanObject(_ o: KernelObject) -> KernelScanObject {
        KernelScanObject(address: o.address, size: o.allocatedSize, allocatedAt: Double(o.time) / 1e9)
    }

    /// The kernel section of a report now, from the ledger and the latest scan (waits for a scan
    /// in progress).
    public func report() -> KernelReport {
        report(from: scanning.withLock { $0 })
    }

    func report(from results: KernelScanResults) -> KernelReport {
        let (frames, latest) = (results.frames, results.latest)
        let tracker = self.tracker
        let builder = KernelReportBuilder { pc, _ in
            if let known = frames[pc] { return known }
            let slide = tracker.slide
            guard let (symbol, offset) = tracker.kernel.symbols.symbol(containing: pc &- slide) else { return ReportFrame(pc: pc) }
            return ReportFrame(pc: pc, function: symbol.name, offset: offset, module: "vmlinux")
        }
        return builder.build(ledger: tracker.ledger.snapshot(), latest: latest, seconds: tracker.clock.seconds)
    }

    /// The end of a `--track kernel` run (no user session to carry the kernel section): prints the
    /// report and writes it as JSON to `jsonPath` when given; false if it could not be written.
    public func finish(jsonPath: String?) -> (written: Bool, report: LeakReport) {
        stopScanning()
        let report = scanning.withLock { LeakReport.kernelOnly(self.report(from: $0), seconds: tracker.clock.seconds) }
        output.text(LeakReportText.render(report))
        return (output.writeFinalJSON(report, to: jsonPath), report)
    }
}
