import AllocationTracing
import ArgumentParser
import Control
import Foundation
import Monitor

/// `leakvisor attach`: start tracking allocations in a guest that `leakvisor run` started without --track.
struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Start tracking user-space allocations in a running guest started without --track (or after detach).",
        discussion: """
            Pauses the guest, reads the guest kernel's symbols and BTF (on the first attach: a few \
            seconds), arms the allocator breakpoints in every library mapped now and the kernel hooks \
            that arm libraries mapped later, and walks each process's glibc heap: the blocks malloc had \
            handed out before the attach enter the ledger as "allocated before attach" with their exact \
            size and no stack, so that scans classify them too (main heap, thread arenas that fit in one \
            heap, mmapped chunks). Then the guest resumes, tracked as with `run --track`: `leakvisor report` \
            and SIGUSR1 give the report, the monitor prints it when the guest ends, and `leakvisor \
            detach` stops tracking. Attach again after detach re-arms (docs/attach.md).

            With a DOMAIN, attaches to a libvirt-managed QEMU domain instead (`--connect`, default \
            qemu:///system), in the foreground: guest RAM from the QEMU process (its shared RAM mapped, \
            or its private RAM mirrored page by page through /proc/PID/mem), vCPUs and breakpoints \
            through a gdbstub that LeakVisor starts in that QEMU through libvirt. \
            SIGINT, SIGTERM or --duration detach (every byte put back) and print the report; SIGUSR1 \
            prints one meanwhile; the end of the domain ends the attach with the report so far. Run \
            as root (the QEMU process's memory). --vmlinux names the guest kernel's image.
            """)

    @Argument(help: ArgumentHelp("A libvirt domain to attach to (instead of a leakvisor monitor).", valueName: "domain"))
    var domain: String?

    @Option(help: ArgumentHelp("libvirt URI of DOMAIN.", valueName: "uri"))
    var connect: String?

    @Option(help: ArgumentHelp("With DOMAIN: the guest kernel's image with symbols (default: the default image's vmlinux).", valueName: "file"))
    var vmlinux: String?

    @Option(name: .customLong("symbols"), help: ArgumentHelp("With DOMAIN: a directory holding host copies of the guest's files (repeatable; default: the default image's rootfs).", valueName: "dir"))
    var symbolDirectories: [String] = []

    @Option(help: ArgumentHelp("With DOMAIN: scan every this long (e.g. 30s) besides at process exits and SIGUSR1.", valueName: "duration"))
    var scanEvery: DurationArgument?

    @Option(help: ArgumentHelp("With DOMAIN: detach and report after this long (e.g. 10m) if no signal came first.", valueName: "duration"))
    var duration: DurationArgument?

    @Option(help: ArgumentHelp("With DOMAIN: write the soak journal (SQLite) here: every scan's report, so that `leakvisor report --journal FILE` rebuilds it even after the monitor was killed. Default: $XDG_STATE_HOME/leakvisor/journals/attach-DATE-TIME-PID.sqlite (docs/journal.md).", valueName: "file"))
    var journal: String?

    @Flag(name: .customLong("no-journal"), help: "With DOMAIN: write no journal.")
    var noJournal = false

    @OptionGroup var common: InspectCommand.Common

    @Option(help: ArgumentHelp("user: malloc family and C++ new/delete; user-malloc: the malloc family only. (Kernel allocations are tracked only from the start of a run: `run --track kernel` or `all`.)", valueName: "what"))
    var track = "user"

    @Option(help: ArgumentHelp("Write the final report as JSON to this file when the guest ends (first attach only).",
                               valueName: "file"))
    var report: String?

    @Option(help: ArgumentHelp("With DOMAIN: frames kept per allocation stack (2 to 256; default 12, as valgrind's --num-callers).",
                               valueName: "N"))
    var stackDepth: Int?

    func validate() throws {
        guard AttachTrack(rawValue: track) != nil else { throw ValidationError("--track is \(AttachTrack.choices)") }
        if let stackDepth { try StackDepthArgument.validate(stackDepth) }
        if domain == nil {
            if connect != nil || vmlinux != nil || !symbolDirectories.isEmpty || scanEvery != nil || duration != nil || journal != nil || noJournal
                || stackDepth != nil {
                throw ValidationError("--connect, --vmlinux, --symbols, --scan-every, --stack-depth, --duration, --journal and --no-journal go with a libvirt DOMAIN (a run's own --stack-depth applies to `attach --session`)")
            }
        } else {
            if common.session != nil { throw ValidationError("--session names a leakvisor monitor; a DOMAIN is attached to directly") }
            if journal != nil && noJournal { throw ValidationError("--journal and --no-journal exclude each other") }
        }
    }

    func run() throws {
        if let domain, let kind = AttachTrack(rawValue: track) {
            let attach = LibvirtAttach(uri: connect ?? "qemu:///system", domainName: domain, track: kind,
                                       reportPath: report.map { HostPathArgument.absolute($0) }, vmlinux: vmlinux.map { HostPathArgument.absolute($0) },
                                       symbolDirectories: symbolDirectories, scanInterval: scanEvery?.seconds, stackDepth: stackDepth ?? UserAllocationTracker.defaultStackDepth, duration: duration?.seconds,
                                       journalPath: noJournal ? nil : (journal.map { HostPathArgument.absolute($0) } ?? JournalLocation.defaultPath(prefix: "attach")),
                                       json: common.json)
            let status = try attach.run()
            if status != 0 { throw ExitCode(status) }
            return
        }
        let path = report.map { HostPathArgument.absolute($0) }
        guard let summary = try common.ask(.attach(track: track, reportPath: path)).attached else {
            throw InspectCommand.InspectFailure.answered("the monitor sent no answer")
        }
        if common.json { return try common.printJSON(summary) }
        Self.describe(summary)
    }

    /// The attach summary in words.
    static func describe(_ summary: AttachSummary) {
        let heaps = summary.preexisting
        print((summary.reattached ? "re-attached" : "attached") + ": \(summary.arming.sites) allocator breakpoint(s)"
              + (summary.arming.files.isEmpty ? "" : " in \(summary.arming.files.joined(separator: ", "))")
              + ", \(summary.arming.kernelHooks) kernel hook(s); guest paused "
              + String(format: "%.1f ms", summary.pausedSeconds * 1000)
              + (summary.kernelSeconds > 0 ? String(format: ", kernel symbols and BTF read in %.1f s", summary.kernelSeconds) : ""))
        print("before the attach: \(heaps.blocks) block(s), \(heaps.bytes) byte(s) in \(heaps.heapsWalked) heap(s)"
              + (heaps.mmappedBlocks > 0 ? " (\(heaps.mmappedBlocks) mmapped)" : "")
              + "; \(heaps.cachedFreeChunks) free chunk(s) in tcache or fastbins left out")
        for note in heaps.notes { print("note: \(note)") }
    }
}
