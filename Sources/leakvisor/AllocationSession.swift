import AllocationMonitor
import AllocationTracking
import Foundation
import Introspection

/// `run --track user`: the tracker the machine's vCPUs call, and the reports made from its
/// ledger (on stderr at exit and on SIGUSR1, as JSON with --report).
final class AllocationSession: Sendable {
    let tracker: UserAllocationTracker
    let builder: LeakReportBuilder
    let includeImageTools: Bool
    let jsonPath: String?

    /// Commands of the default image's own tools (busybox, and lv-exit that reports the command's
    /// status), left out of reports unless --report-all-processes.
    static let imageTools: Set<String> = ["busybox", "lv-exit"]

    init(options: RunCommand, files: GuestSymbolFiles, vmlinux: String?) throws {
        guard let vmlinux else { throw SessionError.noKernelImage }
        let started = Date()
        let kernel = try GuestKernel.load(vmlinux: vmlinux, symbolFile: options.kernelSymbols.map(HostPathArgument.absolute))
        Self.say("tracking user allocations; guest kernel symbols and BTF read in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        tracker = UserAllocationTracker(kernel: kernel, files: files, includeOperators: options.track != .userMalloc)
        builder = LeakReportBuilder(files: files)
        includeImageTools = options.reportAllProcesses
        jsonPath = options.reportPath.map(HostPathArgument.absolute)
        tracker.onArmed { outcome in
            switch outcome {
            case .success(let summary):
                Self.say("armed: kernel hooks on mmap_region and exit_mmap, \(summary.sites) allocator breakpoints"
                         + (summary.files.isEmpty ? "" : " in \(summary.files.joined(separator: ", "))") + "; more as programs map libraries")
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

    func printReport(final: Bool) {
        let text = LeakReportText.render(report(final: final))
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// The final report: printed, and written as JSON when asked. False if the JSON could not be written.
    func finish() -> Bool {
        let report = self.report(final: true)
        var text = LeakReportText.render(report)
        let s = tracker.statistics
        text += "leakvisor: \(s.entries) allocation call(s) and \(s.releases) release(s) trapped (\(s.nestedEntries) nested),"
            + " \(s.sitesArmed) breakpoint(s) armed, \(s.mmapHooks) mmap and \(s.exitHooks) exit hook(s)"
            + (s.unreadableCalls > 0 ? ", \(s.unreadableCalls) call(s) not tracked (unreadable stack)" : "") + "\n"
        for note in tracker.diagnostics.prefix(20) { text += "leakvisor: note: \(note)\n" }
        if case .failure(let error)? = tracker.armingOutcome { text += "leakvisor: allocation tracking did not run: \(error)\n" }
        FileHandle.standardError.write(Data(text.utf8))
        guard let jsonPath else { return true }
        do {
            try ReportFile.writeJSON(report, to: jsonPath)
            return true
        } catch {
            Self.say("cannot write the report to \(jsonPath): \(error)")
            return false
        }
    }

    static func say(_ text: String) { FileHandle.standardError.write(Data("leakvisor: \(text)\n".utf8)) }
}
