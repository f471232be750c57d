import AllocationTracing
import ArgumentParser
import Foundation
import GuestImage
import LeakSuppressions
import MetricsExport
import Monitor
import Reachability
import VMM

/// `leakvisor run`: boot a guest, run a command in it, exit with the command's status.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a Linux guest under the monitor and run a command in it.",
        discussion: """
            The guest's console appears on stdout. The command after `--` runs as a shell command in \
            the guest (in the default image: busybox sh); its exit status becomes leakvisor's exit status. \
            Without a command (and without --track, --kernel, --initrd) the default image runs a demo: \
            lv-leak-tree under --track user, with the leak report (each block classed by a reachability scan) at the end.

            With --track, a journal (SQLite) keeps every scan's report on disk as the run goes, so that \
            `leakvisor report --journal FILE` can rebuild the report, diff two points and rank growing \
            allocation sites, also after the monitor was killed (docs/journal.md). \
            --metrics-listen 127.0.0.1:PORT serves live metrics for Prometheus while the guest runs \
            (docs/metrics.md).

            With --track, every tracked process is scanned for unreferenced blocks as it exits (and \
            every --scan-every while it runs): the report classes its outstanding blocks as definitely \
            lost, indirectly lost, possibly lost or still reachable, as valgrind does, and flags allocation \
            sites whose referenced blocks keep growing without being written.

            With --track kernel (or all), the guest kernel's objects are scanned every --scan-every and on \
            `leakvisor report`, kmemleak's way: an object no kernel root or module data reaches is reported \
            once it is older than 5 s and was unreferenced in 3 scans in a row and not written between \
            them; the report's kernel section gives each leak's allocator, cache, call site (file:line for \
            modules whose .ko with debug info is on the host) and stack (docs/reachability.md).

            On a host without VMX/SVM (kvm_pvm) the guest kernel runs in KVM's instruction emulator: \
            a boot takes about five minutes, and guest time runs 10x slower than wall time.

            Exit status: the guest command's status (or --error-exitcode's when there are definite leaks); 124 when --timeout expired; 125 when the monitor \
            failed or the guest rebooted/panicked without reporting a status; 130 on Ctrl-C.
            """)

    @Option(help: "Kernel image: an ELF vmlinux (fastest here) or a bzImage. Default: the default image's vmlinux.")
    var kernel: String?

    @Option(help: "Initial ramdisk (cpio, optionally compressed). Default: the default image's initramfs.")
    var initrd: String?

    @Option(name: .customLong("disk"), help: ArgumentHelp(
        "A raw disk image as a virtio block device (/dev/vda, /dev/vdb, ...); ':ro' or an unwritable file attaches it read-only. Repeatable.",
        valueName: "PATH[:ro]"))
    var disks: [String] = []

    @Option(name: .customLong("root"), help: ArgumentHelp(
        "Run the command on this ext4 disk image instead of the initramfs: it is attached as the first virtio disk (/dev/vda, before any --disk), mounted, and entered with chroot; --add files and /leakvisor go onto it.",
        discussion: "For example the Debian bookworm disk scripts/setup.sh builds (guest-images/build/debian-root/root.img; its tree is then the symbol directory for --track). For another disk, give its tree with --symbols so that --track finds the host copies of its programs and libraries. ':ro' attaches it read-only (a tmpfs then holds /leakvisor; --add files outside it cannot be written). Without a command, the disk's /bin/sh runs. The disk is synced and unmounted before the guest reports the status.",
        valueName: "PATH[:ro]"))
    var root: String?

    @Option(help: "Guest memory, e.g. 512M or 2G (the guest kernel initializes every page: more memory boots slower here).")
    var memory: SizeArgument = SizeArgument(argument: "512M")!

    @Option(help: "Number of vCPUs.")
    var cpus: Int = 2

    @Option(help: "Extra kernel command-line text.")
    var append: String = ""

    @Option(name: .customLong("add"), help: ArgumentHelp(
        "Put a host file into the guest as HOST[:GUEST] (GUEST defaults to /NAME). Dynamically linked programs bring their shared libraries.",
        valueName: "HOST[:GUEST]"))
    var additions: [String] = []

    @Option(name: .customLong("symbols"), help: ArgumentHelp(
        "A host directory laid out like the guest's root, holding the guest's binaries with symbols and DWARF (for `leakvisor inspect stack`). Repeatable; the default image's tree is always searched.",
        valueName: "DIR"))
    var symbolDirectories: [String] = []

    @Option(help: ArgumentHelp(
        "The ELF vmlinux of the running kernel, for introspection (kallsyms and BTF) when --kernel is a bzImage. Default: --kernel itself, or the default image's vmlinux.",
        valueName: "FILE"))
    var vmlinux: String?

    @Option(name: .customLong("kernel-symbols"), help: ArgumentHelp(
        "Kernel symbols for introspection instead of the kernel's own kallsyms: a full System.map, or an ELF vmlinux with a symbol table (with DWARF, kernel frames get file:line), e.g. from the linux-image-*-dbg package.",
        valueName: "FILE"))
    var kernelSymbols: String?

    @Option(help: ArgumentHelp(
        "What to track: `user` traps the guest's user-space allocators (glibc's malloc family and C++ new/delete, in every process, dynamic and static) and reports outstanding allocations at exit and on SIGUSR1 (without --track, `leakvisor attach` can start tracking later); `user-malloc` traps only the C allocator (C++ new/delete show as the malloc/free they call: about half the traps for C++ code, no new/delete mismatch findings); `kernel` traps the guest kernel's allocators (kmalloc, kmem_cache_alloc and their frees through the kernel's own kmem tracepoints, one trap per event; kmem_cache_free_bulk and vfree at entry) into a kernel ledger, scanned for unreferenced kernel objects with --scan-every (a kernel section in every report); `all` is user and kernel.",
        valueName: "user|user-malloc|kernel|all"))
    var track: TrackTarget?

    @Option(name: .customLong("report"), help: ArgumentHelp(
        "With --track: also write the report at exit as JSON to this file (written atomically).", valueName: "file"))
    var reportPath: String?

    @Option(help: ArgumentHelp(
        "With --track: write the journal to this file (SQLite): the report after every scan and at the end, outstanding bytes per site and process over time, findings and process lifetimes. `leakvisor report --journal FILE` reads it, also after the monitor was killed.",
        discussion: "Default: $XDG_STATE_HOME/leakvisor/journals/run-DATE-TIME-PID.sqlite (else under ~/.local/state); the path is said at start. An existing journal at FILE is replaced; any other file there is refused. See docs/journal.md.",
        valueName: "file"))
    var journal: String?

    @Flag(name: .customLong("no-journal"), help: "With --track: write no journal.")
    var noJournal = false

    @Option(name: .customLong("metrics-listen"), help: ArgumentHelp(
        "With --track: serve live metrics for Prometheus at http://HOST:PORT/metrics while the guest runs: outstanding bytes and blocks per process and per leak class, scans and their pauses, trapped allocator calls.",
        discussion: "HOST is an IP address or localhost (IPv6 in brackets: [::1]:9464); port 0 takes a free port. The URL is said at start. A scrape reads the ledger as it is: it never scans or pauses the guest. An address other than loopback is served with a warning (the metrics name the guest's processes). See docs/metrics.md.",
        valueName: "host:port"))
    var metricsListen: String?

    @Flag(help: "With --track: include the guest image's own tools (busybox init and shell) in reports.")
    var reportAllProcesses = false

    @Flag(help: ArgumentHelp(
        "With --track user or all (experimental): record malloc, calloc, realloc, memalign, free, C++ new and delete without a VM exit, through an event ring in each process that the monitor drains (docs/exitless-tracking.md).",
        discussion: "The monitor maps a code page and, per process, a ring at addresses Linux never uses, backed by memory outside the guest's RAM. An allocation's record carries a 2 KiB copy of the caller's stack, walked later. operator new[], the aligned and nothrow new and posix_memalign still trap, and an entry keeps its int3 where its page has no room for the jumps. Not with --restore of a tracked snapshot, and `leakvisor snapshot` refuses such a guest."))
    var exitless = false

    @Option(name: .customLong("exitless-ring-records"), help: ArgumentHelp(
        "With --exitless: records in each process's event ring (a power of two, 16 to 512). A small ring fills often; tests use it to exercise the full-ring drain.",
        visibility: .hidden))
    var exitlessRingRecords = UserAllocationTracker.exitlessRingRecords

    @Option(help: ArgumentHelp(
        "With --track: also scan the live processes for unreferenced blocks this often (e.g. 10s, 500ms), pausing the guest only for the exact final part of each scan; repeated scans re-read only guest pages written since (KVM dirty logging). Every process is scanned once more as it exits, with or without this option. With --track kernel or all: the kernel's objects are scanned this often too (the guest paused for each kernel scan: about 0.6 s here for a small guest); without it, only on `leakvisor report`.",
        valueName: "duration"))
    var scanEvery: DurationArgument?

    @Option(help: ArgumentHelp(
        "With --track: the longest the guest is held paused for the exact part of a periodic scan round (counted from asking for the pause). A scan cut short is reported as incomplete: blocks it did not prove reachable are not classified, never reported as leaks.",
        valueName: "duration"))
    var scanPauseLimit = DurationArgument(seconds: ScanLimits.defaultPauseSeconds)

    @Option(help: ArgumentHelp(
        "With --track: the longest one scan may take in all: a periodic round (both parts) or the scan of an exiting process (which holds that process's vCPU). Cut short: incomplete, as above.",
        valueName: "duration"))
    var scanTimeLimit = DurationArgument(seconds: ScanLimits.defaultScanSeconds)

    @Option(help: ArgumentHelp(
        "With --track: the most memory a scan may use for the words it caches from guest pages and its own page map (e.g. 512M, 2G). Cut short: incomplete, as above.",
        valueName: "size"))
    var scanMemoryLimit = SizeArgument(bytes: ScanLimits.defaultMemoryBytes)

    /// The scan limits the options give.
    var scanLimits: ScanLimits {
        ScanLimits(pauseSeconds: scanPauseLimit.seconds, scanSeconds: scanTimeLimit.seconds, memoryBytes: scanMemoryLimit.bytes)
    }

    @Option(help: ArgumentHelp(
        "With --track: a referenced block not written for this long counts as stale; an allocation site whose referenced blocks keep growing while mostly stale is flagged.",
        valueName: "duration"))
    var staleAfter = DurationArgument(seconds: 60)

    @Option(help: ArgumentHelp(
        "With --track: frames kept per allocation stack, the allocator's own included (2 to 256; default 12, as valgrind's --num-callers). Callers are found with each file's DWARF CFI (.eh_frame), and with frame pointers in code without it.",
        valueName: "N"))
    var stackDepth = UserAllocationTracker.defaultStackDepth

    @Option(name: .customLong("leak-check-heuristics"), help: ArgumentHelp(
        "With --track: which interior pointers count as references, as valgrind's option: all (the default), none, or a comma-separated list of stdstring, length64, newarray, multipleinheritance. A block such a pointer reaches is still reachable, and the report says via which heuristic.",
        valueName: "list"))
    var leakCheckHeuristics: String?

    @Flag(help: "With --track: also list still-reachable blocks in the text report (they are always counted, and always in the JSON).")
    var showReachable = false

    @Option(help: ArgumentHelp(
        "With --track: exit with this status when the report has definite (direct) leaks, instead of the guest command's status.",
        valueName: "N"))
    var errorExitcode: Int32?

    @Option(name: .customLong("suppressions"), help: ArgumentHelp(
        "With --track: leave out of every report the leaks this valgrind .supp file or LeakSanitizer leak: list names (repeatable); the report counts what each suppressed.",
        valueName: "file"))
    var suppressionFiles: [String] = []

    @Option(help: "Stop the guest after this many seconds.")
    var timeout: Double?

    @Flag(help: "Show the kernel's boot messages.")
    var verboseKernel = false

    @Flag(help: "Forward standard input to the guest console (default when stdin is a terminal).")
    var interactive = false

    @Flag(help: "Pass the guest's console output to a terminal unchanged (by default its escape sequences are shown as ^[ there).")
    var rawConsole = false

    @Flag(name: .customLong("no-snapshot"), help: ArgumentHelp(
        "Boot cold, and neither use nor save the snapshot cache.",
        discussion: "By default a run restores the cached snapshot of its kernel, initramfs and machine shape (--cpus, --memory, --append) when one fits, and a cold boot saves one at the point where the guest waits for its command, so the next run starts in seconds. The cache is in $LEAKVISOR_SNAPSHOT_DIR, else $XDG_CACHE_HOME/leakvisor/snapshots, else ~/.cache/leakvisor/snapshots. Up to 4 disks (--root and --disk images) share the snapshot of a run without disks (the guest probes them after the restore)."))
    var noSnapshot = false

    @Option(help: ArgumentHelp(
        "Continue the guest saved in this snapshot file (made by `leakvisor snapshot` or the cache) instead of booting.",
        discussion: "The file must fit the kernel and initramfs (default image, or --kernel/--initrd) and this monitor's format. A snapshot of a guest waiting for its work takes the command after --; one saved mid-run continues what it ran. A guest saved while tracked goes on being tracked (with the saved --track mode; --report, --scan-every and the other tracking options apply) and its report covers the time before the save.",
        valueName: "file"))
    var restore: String?

    @Option(help: ArgumentHelp("KVM device to use.", visibility: .hidden))
    var kvmDevice: String = "/dev/kvm"

    @Argument(parsing: .postTerminator, help: "Command to run in the guest.")
    var command: [String] = []

    /// Whether an option that only tracking uses was given: refused without --track, and for a
    /// --restore, unless the snapshot was saved tracking.
    var trackingOnlyOptionsGiven: Bool {
        reportPath != nil || reportAllProcesses || scanEvery != nil || showReachable || errorExitcode != nil
            || !suppressionFiles.isEmpty || journal != nil || noJournal || metricsListen != nil || leakCheckHeuristics != nil || exitless
    }

    func validate() throws {
        if cpus < 1 || cpus > 64 { throw ValidationError("--cpus must be between 1 and 64") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
        for disk in disks { _ = try DiskArgument(parsing: disk) }
        // A snapshot of a tracked guest (--restore) goes on tracking without --track: checked when it is read.
        if track == nil && restore == nil && trackingOnlyOptionsGiven {
            throw ValidationError("--report, --report-all-processes, --scan-every, --show-reachable, --error-exitcode, --suppressions,"
                                  + " --journal, --no-journal, --metrics-listen, --leak-check-heuristics and --exitless need --track (or --restore of a tracked guest's snapshot)")
        }
        if let metricsListen {
            do { _ = try ListenAddress(parsing: metricsListen) } catch { throw ValidationError(error.description) }
        }
        if let leakCheckHeuristics {
            do { _ = try LeakCheckHeuristics(parsing: leakCheckHeuristics) } catch { throw ValidationError(error.description) }
        }
        if journal != nil && noJournal { throw ValidationError("--journal and --no-journal exclude each other") }
        if let scanEvery, scanEvery.seconds < 0.1 { throw ValidationError("--scan-every must be at least 100ms") }
        if scanMemoryLimit.bytes < 16 << 20 { throw ValidationError("--scan-memory-limit must be at least 16M") }
        try StackDepthArgument.validate(stackDepth)
        let ringRecords = UserAllocationTracker.exitlessRingRecordRange
        if exitlessRingRecords.nonzeroBitCount != 1 || !ringRecords.contains(exitlessRingRecords) {
            throw ValidationError("--exitless-ring-records must be a power of two from \(ringRecords.lowerBound) to \(ringRecords.upperBound)")
        }
        if exitlessRingRecords != UserAllocationTracker.exitlessRingRecords && !exitless { throw ValidationError("--exitless-ring-records needs --exitless") }
        if exitless && track == .kernel { throw ValidationError("--exitless needs --track user, user-malloc or all") }
        if let errorExitcode, errorExitcode < 1 || errorExitcode > 255 { throw ValidationError("--error-exitcode must be between 1 and 255") }
    }

    /// The options as plain values for `RunSession`; --disk arguments are checked again here, and
    /// --root here only (a bad --root is a run failure: exit status 125).
    func plainOptions() throws -> RunOptions {
        var tracking = TrackingOptions()
        tracking.staleAfterSeconds = staleAfter.seconds
        tracking.stackDepth = stackDepth
        tracking.scanLimits = scanLimits
        if let leakCheckHeuristics { tracking.heuristics = try LeakCheckHeuristics(parsing: leakCheckHeuristics) }
        tracking.scanInterval = scanEvery?.seconds
        tracking.showReachable = showReachable
        tracking.includeImageTools = reportAllProcesses
        tracking.exitless = exitless
        tracking.exitlessRingRecords = exitlessRingRecords
        tracking.jsonPath = reportPath.map(HostPathArgument.absolute)
        let metricsAddress = try metricsListen.map { text throws(MetricsError) in try ListenAddress(parsing: text) }
        if !suppressionFiles.isEmpty {
            let suppressions = try SuppressionList.load(suppressionFiles.map(HostPathArgument.absolute))
            tracking.reportFilter = { suppressions.apply(to: $0) }
        }
        return RunOptions(
            kernel: kernel, initrd: initrd, disks: try disks.map { try DiskArgument(parsing: $0).configuration },
            root: try root.map { try DiskArgument(parsing: $0, option: "--root").configuration },
            memoryBytes: memory.bytes, cpus: cpus, append: append, additions: additions,
            symbolDirectories: symbolDirectories, vmlinux: vmlinux, kernelSymbols: kernelSymbols, track: track,
            tracking: tracking, journalPath: journal.map(HostPathArgument.absolute), writesJournal: !noJournal, metricsAddress: metricsAddress,
            trackingOptionsGiven: trackingOnlyOptionsGiven, errorExitcode: errorExitcode, timeout: timeout, verboseKernel: verboseKernel,
            interactive: interactive, rawConsole: rawConsole, kvmDevice: kvmDevice, snapshots: !noSnapshot, restore: restore,
            command: command)
    }

    func run() throws {
        do {
            let outcome = try RunSession(options: try plainOptions()).execute()
            throw ExitCode(outcome)
        } catch let error as ExitCode {
            throw error
        } catch {
            MonitorOutput.say("\(error)")
            throw ExitCode(125)
        }
    }
}

extension TrackTarget: ExpressibleByArgument {}
