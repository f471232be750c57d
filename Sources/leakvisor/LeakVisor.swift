import ArgumentParser

@main
struct LeakVisor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leakvisor",
        abstract: "A memory-leak detector that lives in the hypervisor: boots a Linux guest on KVM and watches it from outside.",
        discussion: """
            `leakvisor run` with no arguments boots the default guest image (Debian's cloud kernel and a \
            busybox initramfs, built by scripts/setup.sh) and runs a demo in it: a small program that \
            leaks, with its allocations trapped from outside and reported at exit.
            """,
        subcommands: [RunCommand.self, InspectCommand.self, ReportCommand.self, AttachCommand.self, DetachCommand.self, SnapshotCommand.self, BenchCommand.self],
        defaultSubcommand: RunCommand.self)
}
