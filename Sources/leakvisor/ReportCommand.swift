import AllocationLedger
import AllocationTracing
import ArgumentParser
import Control
import Foundation
import GuestInterface
import LeakAnalysis
import ReportFormats

/// `leakvisor report`: the allocation report of a running `leakvisor run --track user`, or of a
/// report file, in any of the export formats.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Print the allocation report of a tracked guest, or of a report file, in text, JSON or an export format.",
        discussion: """
            Outstanding allocations per process, grouped by allocating function and stack, largest first \
            (the same report the monitor prints at exit and on SIGUSR1). Exited processes are listed with \
            the blocks they had outstanding when their memory was torn down. With --input, the report \
            comes from a file `run --report` wrote, and no monitor is needed. --format writes it as \
            valgrind XML, SARIF, a pprof heap profile, folded stacks or one HTML page (docs/report-formats.md).
            """)

    @OptionGroup var common: InspectCommand.Common

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the report to this file (atomically) instead of printing it (JSON unless --format says otherwise).", valueName: "file"))
    var output: String?

    @Flag(help: "Include the guest image's own tools (busybox init and shell).")
    var allProcesses = false

    @OptionGroup var export: ReportExportOptions

    func run() throws {
        let report: LeakReport
        if let input = export.input {
            report = try ReportExport.read(input)
        } else {
            guard let answer = try common.ask(.report(allProcesses: allProcesses)).report else {
                throw InspectCommand.InspectFailure.answered("the monitor sent no report")
            }
            report = answer
        }
        let format = export.format ?? (output != nil || common.json ? .json : .text)
        try ReportExport.write(report, options: export, format: format, output: output)
    }
}

/// `leakvisor detach`: stop tracking and restore the guest.
struct DetachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach",
        abstract: "Stop tracking allocations in a running guest and put back every byte the monitor changed.",
        discussion: """
            Removes the allocator breakpoints and kernel hooks and restores the return addresses of \
            allocator calls in flight; a breakpoint whose page the guest replaced meanwhile is left \
            alone and listed. The #BP gate breakpoint, the periodic scans and the guest page-write \
            log are turned off; the guest runs on untracked. The ledger is kept: `leakvisor report` \
            still works, and the monitor still prints the report at exit.
            """)

    @OptionGroup var common: InspectCommand.Common

    func run() throws {
        guard let summary = try common.ask(.detach).detached else {
            throw InspectCommand.InspectFailure.answered("the monitor sent no answer")
        }
        if common.json { return try common.printJSON(summary) }
        print("restored \(summary.bytesRestored) byte(s) and \(summary.returnAddressesRestored) return address(es)"
              + (summary.bytesChangedByGuest > 0 ? "; \(summary.bytesChangedByGuest) byte(s) were no longer where the monitor put them and were left alone" : ""))
        for note in summary.notes { print("note: \(note)") }
    }
}
