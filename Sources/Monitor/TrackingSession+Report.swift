import AllocationTracing
import LeakAnalysis

extension TrackingSession {
    /// The report as text now (SIGUSR1: after a scan), or the final one.
    public func printReport(final: Bool) {
        if !final { scanNow(reason: "SIGUSR1", record: false) }
        let report = self.report(final: final)
        recordSample(report, reason: final ? "final" : "SIGUSR1", final: final)
        output.text(LeakReportText.render(report, showReachable: options.showReachable))
    }

    /// The final report: printed with the tracker's figures and notes, and written as JSON when
    /// asked. `written` is false if the JSON could not be written.
    public func finish() -> (written: Bool, report: LeakReport) {
        stopScanning()
        let report = self.report(final: true)
        // After a scan in flight (the timer is stopped): the final sample is the journal's last.
        scanning.withLock { _ in
            recordSample(report, reason: "final", final: true)
            journal?.close()
        }
        output.text(LeakReportText.render(report, showReachable: options.showReachable) + trackerSummary())
        if let journal { output.line(journal.summary()) }
        return (output.writeFinalJSON(report, to: options.jsonPath), report)
    }

    /// The lines after the final report: what was trapped, the tracker's notes, and why tracking
    /// stopped or never ran.
    func trackerSummary() -> String {
        let s = tracker.statistics
        var text = "leakvisor: \(s.entries) allocation call(s) and \(s.releases) release(s) trapped (\(s.nestedEntries) nested),"
            + " \(s.sitesArmed) breakpoint(s) armed, \(s.mmapHooks) mmap and \(s.exitHooks) exit hook(s)"
            + (s.unreadableCalls > 0 ? ", \(s.unreadableCalls) call(s) not tracked (unreadable stack)" : "")
            + (s.faultsDelivered > 0 ? ", \(s.faultsDelivered) fault(s) delivered to the guest in place of an access its thread could not make" : "")
            + (s.trampolineFaultsDeclined > 0 ? ", \(s.trampolineFaultsDeclined) fault(s) at the return trampoline not taken as a return" : "") + "\n"
        if tracker.usesExitlessPath {
            text += "leakvisor: exitless: \(s.ringReleases) release(s) and \(s.ringAllocations) allocation(s) recorded through event rings"
                + " without a trap (\(s.ringNestedEntries) nested or forwarded),"
                + " \(tracker.exitlessEntryPoints) entry point(s) on the exitless path, \(s.exitlessTraps) trap(s) of its own"
                + " (code page and rings mapped on first use, full rings, fallbacks)"
                + (s.ringRecordsDropped > 0 ? ", \(s.ringRecordsDropped) ring record(s) not taken (malformed, or past the calls in flight kept)" : "")
                + (tracker.exitlessRefusal.map { "; off: \($0)" } ?? "") + "\n"
        }
        if s.stackWalks > 0 {
            let frames = s.stackFramesByCFI + s.stackFramesByFramePointer
            text += "leakvisor: stacks: \(s.stackWalks) walked, " + String(format: "%.1f", Double(frames) / Double(s.stackWalks))
                + " frame(s) past the caller on average (\(s.stackFramesByCFI) through CFI from \(s.unwindTablesBuilt) file(s), \(s.stackFramesByFramePointer) through frame pointers)\n"
        }
        for note in tracker.diagnostics.prefix(20) { text += "leakvisor: note: \(note)\n" }
        if case .failure(let error)? = tracker.armingOutcome {
            if case TrackerError.disarmed = error {
                text += "leakvisor: allocation tracking was stopped by detach; the report covers the time before\n"
            } else {
                text += "leakvisor: allocation tracking did not run: \(error)\n"
            }
        }
        return text
    }
}
