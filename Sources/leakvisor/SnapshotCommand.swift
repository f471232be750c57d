import ArgumentParser
import Foundation

/// `leakvisor snapshot -o FILE`: save a running guest to continue later with `run --restore`.
struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Save a running guest into a snapshot file, to continue it later with `leakvisor run --restore FILE`.",
        discussion: """
            Asks a monitor started with `leakvisor run` on this host (through its control socket) to pause \
            the guest, write its RAM (sparse), vCPU, interrupt-controller, timer and device state into FILE \
            (atomically: a complete file or none), and let it go on. A snapshot can be restored as often \
            as needed; each restore continues from the same point. A guest tracked with --track is saved \
            with its tracking (the allocator breakpoints, calls in flight, the ledger and the scan history, \
            taken while the guest is paused): every restore goes on tracking from that point, with or \
            without --track, and its report covers the time before the save too.
            """)

    @OptionGroup var common: InspectCommand.Common

    @Option(name: [.customShort("o"), .customLong("output")], help: "The snapshot file to write (replaced if it exists).")
    var output: String

    func run() throws {
        guard let saved = try common.ask(.snapshot(path: HostPathArgument.absolute(output))).snapshot else {
            throw InspectCommand.InspectFailure.answered("the monitor sent no answer")
        }
        if common.json { return try common.printJSON(saved) }
        print("saved \(saved.path): \(saved.bytesOnDisk >> 20) MiB on disk, \(saved.ramPagesWritten) RAM pages, guest paused "
              + String(format: "%.2f s", saved.pausedSeconds))
    }
}
