import AllocationLedger
import AllocationTracing
import ArgumentParser
import Control
import Foundation
import GuestInterface
import LeakAnalysis
import ReportFormats

/// `leakvisor report`: the allocation report of a running `leakvisor run --track user` (or of a
/// run `leakvisor attach` tracks), of a
/// report file, or of the journal a tracking run wrote, in text, JSON or an export format.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Print the allocation report of a tracked guest, of its journal or of a report file, in text, JSON or an export format.",
        discussion: """
            Outstanding allocations per process, grouped by allocating function and stack, largest first \
            (the same report the monitor prints at exit and on SIGUSR1), from a monitor run with --track \
            or tracking since `leakvisor attach`; blocks from before the attach are grouped as \
            "allocated before attach", with no stack. Exited processes are listed with \
            the blocks they had outstanding when their memory was torn down.

            With --journal FILE the report comes from the journal a tracking run wrote (no guest, no \
            monitor; also after the monitor was killed): the latest sample, or the one at --at, followed \
            by the sites whose outstanding bytes grow steadily, with their rate. --diff A B (or --since A \
            [--until B]) shows instead what is new and what grew per site between two samples. Times are \
            seconds since tracking started: 90, 90s, 5m, 1.5h; each picks the latest sample at or before it.

            With --input FILE the report comes from a file `run --report` wrote. --format writes any of \
            them as valgrind XML, SARIF, a pprof heap profile, folded stacks or one HTML page (from a \
            journal, with plots of outstanding bytes over the run) (docs/report-formats.md).
            """)

    @OptionGroup var common: InspectCommand.Common

    @Option(name: .shortAndLong, help: ArgumentHelp(
        "Write the report to this file (atomically) instead of printing it (JSON from a running monitor unless --format says otherwise).",
        valueName: "file"))
    var output: String?

    @Flag(help: "Include the guest image's own tools (busybox init and shell).")
    var allProcesses = false

    @OptionGroup var export: ReportExportOptions

    @Option(help: ArgumentHelp("Read the report from this journal file instead of a running monitor.", valueName: "file"))
    var journal: String?

    @Option(help: ArgumentHelp("With --journal: the latest sample at or before this time.", valueName: "time"))
    var at: JournalTimeArgument?

    @Option(parsing: .upToNextOption, help: ArgumentHelp("With --journal: what changed per site from time A to time B.",
                                                         valueName: "A B"))
    var diff: [JournalTimeArgument] = []

    @Option(help: ArgumentHelp("With --journal: what changed per site since this time (to --until, else the latest sample).",
                               valueName: "time"))
    var since: JournalTimeArgument?

    @Option(help: ArgumentHelp("With --journal and --since: the later point.", valueName: "time"))
    var until: JournalTimeArgument?

    @Flag(help: "With --journal: also list still-reachable blocks in the text report.")
    var showReachable = false

    func validate() throws {
        if journal == nil && (at != nil || !diff.isEmpty || since != nil || until != nil || showReachable) {
            throw ValidationError("--at, --diff, --since, --until and --show-reachable need --journal")
        }
        if journal != nil && export.input != nil { throw ValidationError("--journal and --input exclude each other") }
        if !diff.isEmpty && diff.count != 2 { throw ValidationError("--diff takes two times: --diff A B") }
        if until != nil && since == nil { throw ValidationError("--until needs --since") }
        if !diff.isEmpty && since != nil { throw ValidationError("--diff and --since exclude each other") }
        if at != nil && (!diff.isEmpty || since != nil) { throw ValidationError("--at and a diff (--diff, --since) exclude each other") }
        if diffPoints != nil, let format = export.format, format != .text && format != .json {
            throw ValidationError("a diff (--diff, --since) is written as text or json")
        }
    }

    func run() throws {
        if let journal { return try runFromJournal(journal) }
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
            still works, and the monitor still prints the report at exit. `leakvisor attach` re-arms \
            (docs/attach.md).

            With a libvirt DOMAIN: puts back what an `attach DOMAIN` whose monitor died (kill -9, a \
            crash) had changed, from the record it kept on disk: the breakpoints and patched bytes, \
            the return addresses of calls in flight it knew of, and its gdbstub breakpoints; the \
            guest runs on. (A live `attach DOMAIN` detaches on SIGINT or SIGTERM.)
            """)

    @OptionGroup var common: InspectCommand.Common

    @Argument(help: ArgumentHelp("A libvirt domain whose attach did not detach (its monitor died).", valueName: "domain"))
    var domain: String?

    @Option(help: ArgumentHelp("libvirt URI of DOMAIN (default qemu:///system).", valueName: "uri"))
    var connect: String?

    func validate() throws {
        if domain == nil && connect != nil { throw ValidationError("--connect goes with a libvirt DOMAIN") }
        if domain != nil && common.session != nil { throw ValidationError("--session names a leakvisor monitor, not a DOMAIN") }
    }

    func run() throws {
        let summary: ArmingSummary
        if let domain {
            summary = try LibvirtRecovery(uri: connect ?? "qemu:///system", domainName: domain).run()
        } else {
            guard let answer = try common.ask(.detach).detached else {
                throw InspectCommand.InspectFailure.answered("the monitor sent no answer")
            }
            summary = answer
        }
        if common.json { return try common.printJSON(summary) }
        print("restored \(summary.bytesRestored) byte(s) and \(summary.returnAddressesRestored) return address(es)"
              + (summary.bytesChangedByGuest > 0 ? "; \(summary.bytesChangedByGuest) byte(s) were no longer where the monitor put them and were left alone" : ""))
        for note in summary.notes { print("note: \(note)") }
    }
}
