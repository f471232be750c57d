import ArgumentParser
import Benchmarks
import Reachability

/// `leakvisor bench`: the benchmarks. `boot` (the default), `tracking` and `scan`; their logic is
/// in the Benchmarks module, these commands only parse options.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: boot and guest speed (default), the cost of allocation tracking (user and kernel), of the ledger, and of reachability scans.",
        subcommands: [BootBench.self, TrackingBench.self, KernelBench.self, ScanBench.self, LedgerBench.self],
        defaultSubcommand: BootBench.self)

    /// Runs a benchmark; a failed benchmark boot is reported as before (a usage-style error).
    static func running(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch BenchmarkError.runFailed(let text) {
            throw ValidationError(text)
        }
    }
}

/// `leakvisor bench boot`: boot time to user space (median of runs) and guest user-mode speed
/// relative to the same static program on the host, in one run.
struct BootBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Measure boot time to user space and guest compute speed against the host.",
        discussion: """
            Boots the default image --runs times with the uncompressed vmlinux (each boot also runs \
            lv-compute and lv-syscalls in the guest), once with the bzImage unless --skip-bzimage, \
            and runs the same static programs on the host. Then one more cold boot saves a snapshot \
            where the guest waits for its command, and --runs (at least 3) restores of it run the \
            same programs: restore time and time to the command, next to the cold boot's. Prints \
            medians and ratios.
            """)

    @Option(help: "Boots of the vmlinux kernel to take the median of.")
    var runs: Int = 3

    @Option(help: "Guest memory for every boot.")
    var memory: SizeArgument = SizeArgument(argument: "512M")!

    @Option(help: "lv-compute iterations (same on host and guest).")
    var iterations: Int = 400_000_000

    @Option(help: "lv-syscalls calls (same on host and guest).")
    var syscalls: Int = 2000

    @Flag(help: "Do not measure the bzImage boot path.")
    var skipBzimage = false

    @Option(help: "Stop any single boot after this many seconds.")
    var timeout: Double = 1800

    func validate() throws {
        if runs < 1 || runs > 20 { throw ValidationError("--runs must be between 1 and 20") }
        if iterations < 1 || syscalls < 1 { throw ValidationError("--iterations and --syscalls must be positive") }
    }

    func run() throws {
        let image = try GuestImageLocator.requireDefaultDirectory()
        var options = BootBenchmarkOptions()
        options.runs = runs
        options.memoryBytes = memory.bytes
        options.iterations = iterations
        options.syscalls = syscalls
        options.skipBzImage = skipBzimage
        options.timeout = timeout
        try BenchCommand.running { try BootBenchmark(options: options, image: image).run() }
    }
}

/// `leakvisor bench tracking`: the cost of `--track user`, in one boot: the two benchmark guest
/// programs tracked, then (after detaching) untracked, and the guest's syscall round trip.
struct TrackingBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracking",
        abstract: "Measure allocation tracking: tracked vs untracked guest programs, cost per trapped event.",
        discussion: """
            Boots the default image once and runs lv-bench-malloc (malloc/free pairs) and \
            lv-bench-realistic (a C++ map/string workload) three times: tracked with every entry point \
            (--track user), tracked with the C allocator only (--track user-malloc), and untracked \
            (after detaching, which restores the guest), each time also redis-benchmark against Debian's \
            redis-server (the host's, put in the guest; on jemalloc); then lv-syscalls. Prints times, \
            ratios, trapped events per allocation, cost per event next to a bare exit round trip (a tiny \
            VM doing `out` in a loop), the allocation stack walks' cost, redis's throughput tracked \
            against untracked, and the ledger's memory per live block. Then the host peers on the same \
            programs built for the host: native, LeakSanitizer, heaptrack and valgrind, as ratios to \
            native and extra time per allocation.
            """)

    @Option(help: "malloc/free pairs for lv-bench-malloc.")
    var pairs: Int = 2000

    @Option(help: "Items for lv-bench-realistic (about 46 allocator calls per item).")
    var items: Int = 40

    @Option(help: "Requests of each of SET and GET for redis-benchmark against redis-server in the guest (Debian's, from the host; 0: no redis run).")
    var redisRequests: Int = 500

    @Flag(help: "Measure only the host peers (LeakSanitizer, heaptrack, valgrind on the same programs built for the host): no guest.")
    var peersOnly = false

    @Option(help: "Guest vCPUs.")
    var cpus: Int = 2

    @Option(help: "Stop the boot after this many seconds.")
    var timeout: Double = 2400

    func validate() throws {
        if pairs < 1 || items < 1 { throw ValidationError("--pairs and --items must be positive") }
        if redisRequests < 0 { throw ValidationError("--redis-requests must be 0 or more") }
    }

    func run() throws {
        let image = try GuestImageLocator.requireDefaultDirectory()
        var options = TrackingBenchmarkOptions()
        options.pairs = pairs
        options.items = items
        options.redisRequests = redisRequests
        options.peersOnly = peersOnly
        options.cpus = cpus
        options.timeout = timeout
        try BenchCommand.running { try TrackingBenchmark(options: options, image: image).run() }
    }
}

/// `leakvisor bench kernel`: the cost of `--track kernel`, in one boot.
struct KernelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel",
        abstract: "Measure kernel allocation tracking: a fork/exec and file workload tracked vs untracked, traps per event, a kernel scan.",
        discussion: """
            Boots the default image once with the kernel allocation tracker armed and runs --rounds rounds of a \
            busybox workload (a file created, read and removed, a pipe, 3 fork/execs), timed on the host between \
            console markers; then --scans kernel leak scans of the ledger while the guest idles, --scan-interval \
            apart (the first full, the later ones incremental through the guest's write log and a frame cache); \
            then detaches (every kernel byte put back) and runs the same rounds untracked. Prints both times and \
            their ratio, the kernel's allocation and free events, traps per event, the cost per trap next to a bare \
            exit round trip, and each scan's pause, size, and pages read and reused. Restores the cached snapshot \
            of the image (as `leakvisor run` does) when there is one, else boots cold.
            """)

    @Option(help: "Rounds of the workload in each phase.")
    var rounds: Int = 60

    @Option(help: "Guest vCPUs.")
    var cpus: Int = 2

    @Option(help: "Stop the boot after this many seconds.")
    var timeout: Double = 2400

    @Option(help: "Kernel leak scans after the tracked phase (the first full, the others incremental).")
    var scans: Int = 5

    @Option(help: "Seconds the guest runs between two of those scans.")
    var scanInterval: Double = 2

    func validate() throws {
        if rounds < 1 || rounds > 100_000 { throw ValidationError("--rounds must be 1...100000") }
        if scans < 1 || scans > 1000 { throw ValidationError("--scans must be 1...1000") }
        if !(scanInterval >= 0 && scanInterval <= 3600) { throw ValidationError("--scan-interval must be 0...3600 seconds") }
    }

    func run() throws {
        let image = try GuestImageLocator.requireDefaultDirectory()
        var options = KernelTrackingBenchmarkOptions()
        options.rounds = rounds
        options.cpus = cpus
        options.timeout = timeout
        options.scans = scans
        options.scanInterval = scanInterval
        try BenchCommand.running { try KernelTrackingBenchmark(options: options, image: image).run() }
    }
}

/// `leakvisor bench scan`: what a reachability scan costs, in one boot: full scans of a guest
/// process with a large heap, then incremental rescans after it dirtied nothing and 1% of its pages.
struct ScanBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Measure reachability scans: full-scan throughput and incremental rescans after 1% of pages changed.",
        discussion: """
            Boots the default image once, tracked, and runs lv-scan-bench, which builds a heap of --mib MiB \
            in --block-byte blocks linked from a global (plus 16 leaked blocks). Then, with the program \
            waiting: two full scans (nothing cached), then --repeat rounds of an incremental scan with \
            nothing written and one after the program rewrote one word in --permille/1000 of its heap \
            pages. Prints bytes scanned, GiB/s, pages read, the phases and the pause for each, then the \
            written rescans' median cost against the quicker full scan and the rescans' median and longest pause; \
            the run ends there (the guest is stopped, not left to free its heap).

            A machine shape with no snapshot in the cache boots cold and saves one, so the next run of \
            that shape starts at once. On kvm_pvm the guest builds its heap at about 1 MB/s (the emulated \
            kernel zeroes every new page): --mib 1024 --memory-mib 2304 takes about 25 min after the boot.
            """)

    @Option(help: "Heap size of lv-scan-bench in MiB.")
    var mib: Int = 64

    @Option(help: "Block size of lv-scan-bench in bytes.")
    var blockBytes: Int = 4096

    @Option(help: "Pages the program dirties before each written rescan, per thousand.")
    var permille: Int = 10

    @Option(name: .customLong("repeat"), help: "Rounds of (rescan with nothing written, write, rescan); the summary gives their medians.")
    var repeats: Int = 5

    @Option(name: .customLong("memory-mib"),
            help: "Guest memory in MiB (at least 2 x --mib + 128). 512, the default, restores the snapshot cache's snapshot when there is one; another size boots cold.")
    var memoryMiB: Int = 512

    @Option(help: "Stop the run after this many seconds (default: 2400, and 2 s more per MiB over 450 for big heaps).")
    var timeout: Double?

    @Option(help: ArgumentHelp("As for `run`: the longest pause of a scan round.", valueName: "duration"))
    var scanPauseLimit = DurationArgument(seconds: ScanLimits.defaultPauseSeconds)

    @Option(help: ArgumentHelp("As for `run`: the longest a scan round may take.", valueName: "duration"))
    var scanTimeLimit = DurationArgument(seconds: ScanLimits.defaultScanSeconds)

    @Option(help: ArgumentHelp("As for `run`: the memory a scan may use.", valueName: "size"))
    var scanMemoryLimit = SizeArgument(bytes: ScanLimits.defaultMemoryBytes)

    func validate() throws {
        if mib < 1 || mib > 1024 || blockBytes < 64 || permille < 0 || permille > 1000 || repeats < 1 || repeats > 100 {
            throw ValidationError("out-of-range option")
        }
        if memoryMiB < mib * 2 + 128 { throw ValidationError("--memory-mib must be at least 2 x --mib + 128") }
    }

    func run() throws {
        let image = try GuestImageLocator.requireDefaultDirectory()
        var options = ScanBenchmarkOptions()
        options.mib = mib
        options.blockBytes = blockBytes
        options.permille = permille
        options.repeats = repeats
        options.memoryMiB = memoryMiB
        options.timeout = timeout ?? Double(max(2400, 1500 + 2 * mib))
        options.scanLimits = ScanLimits(pauseSeconds: scanPauseLimit.seconds, scanSeconds: scanTimeLimit.seconds,
                                        memoryBytes: scanMemoryLimit.bytes)
        try BenchCommand.running { try ScanBenchmark(options: options, image: image).run() }
    }
}

/// `leakvisor bench ledger`: the ledger's own cost per allocator event at growing numbers of live
/// blocks, on the host (no guest).
struct LedgerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Measure the allocation ledger's cost per event as live blocks grow (host only, seconds).",
        discussion: """
            Fills one address space's ledger with 1,000 to 1,000,000 live blocks and times release + \
            allocate pairs at each size: what every trapped allocator event pays for bookkeeping, \
            besides the trap. A cost that grows with the live blocks is a defect. \
            `swift build -c release` first for release figures.
            """)

    @Option(help: "Release + allocate pairs timed at each size.")
    var pairs: Int = 20_000

    func validate() throws {
        if pairs < 1 || pairs > 10_000_000 { throw ValidationError("--pairs must be in 1...10000000") }
    }

    func run() throws {
        LedgerBenchmark(pairs: pairs).run()
    }
}
