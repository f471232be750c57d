import X86
import AllocationLedger
import AllocationTracing
import Foundation
import GuestInterface
import GuestMemory
import Introspection
import Synchronization
import VMM

/// What `bench tracking` measures, as plain values.
public struct TrackingBenchmarkOptions: Sendable {
    /// malloc/free pairs for lv-bench-malloc.
    public var pairs = 2000
    /// Items for lv-bench-realistic (about 46 allocator calls per item).
    public var items = 40
    /// Requests of each of SET and GET for redis-benchmark against Debian's redis-server in the
    /// guest (0, or redis not installed on the host: no redis run).
    public var redisRequests = 500
    /// Run only the host peers (no guest).
    public var peersOnly = false
    public var cpus = 2
    /// Stop the boot after this many seconds.
    public var timeout: Double = 2400

    public init() {}
}

/// The cost of `--track user`, in one boot: the two benchmark guest programs tracked with the
/// exitless release path, then with traps only (every entry point, then the C allocator's only),
/// then (after detaching) untracked, and the guest's syscall round trip; printed on stdout.
public struct TrackingBenchmark: Sendable {
    public let options: TrackingBenchmarkOptions
    /// The default guest image's directory.
    public let image: URL

    public init(options: TrackingBenchmarkOptions, image: URL) {
        self.options = options
        self.image = image
    }

    public func run() throws {
        let peers = HostPeersBenchmark(hostBin: image.appendingPathComponent("host-bin"), pairs: options.pairs, items: options.items)
        if options.peersOnly {
            peers.run()
            return
        }
        try runInGuest()
        peers.run()
    }

    func runInGuest() throws {
        let (pairs, items, cpus) = (options.pairs, options.items, options.cpus)
        let redis = options.redisRequests > 0 ? RedisBenchmarkRun(requests: options.redisRequests) : nil
        if options.redisRequests > 0, redis == nil { say("redis-server, redis-benchmark or redis-cli is not installed on the host: no redis run (scripts/setup.sh installs them)") }
        let benchmarks = "lv-bench-malloc \(pairs); lv-bench-realistic \(items)"
        let programs = benchmarks + (redis.map { "; echo LV-BENCH-REDIS; " + $0.script } ?? "")
        // A warm-up run first (its figures are dropped): the CFI tables of the programs' files are
        // built by their first stack walks, once, and would otherwise be charged to the first phase.
        let command = "\(benchmarks); echo LV-BENCH-WARM; "
            + "\(programs); echo LV-BENCH-NEXT 1; read a; \(programs); echo LV-BENCH-NEXT 2; read b; \(programs);"
            + " echo LV-BENCH-NEXT 3; read c; \(programs); lv-syscalls 2000"
        var config = try BenchmarkBoot.configuration(kernel: image.appendingPathComponent("vmlinux"), image: image, command: command,
                                                     additions: redis?.additions ?? [])
        config.vcpuCount = cpus
        config.timeoutSeconds = options.timeout
        let kernel = try GuestKernel.load(vmlinux: image.appendingPathComponent("vmlinux").path, symbolFile: nil)
        let files = GuestSymbolFiles(explicit: Dictionary(uniqueKeysWithValues: RedisBenchmarkRun.tools.map { ($0, $0) }),
                                     roots: [image.appendingPathComponent("rootfs").path],
                                     hostCopies: ["/lib/", "/usr/lib/"])
        let region = try MonitorRegion(start: MonitorRegion.defaultStart(memorySize: config.memorySize),
                                       size: UserAllocationTracker.exitlessRegionBytes)
        config.monitorRegion = region
        let tracker = UserAllocationTracker(kernel: kernel, files: files, monitorRegion: region)
        config.trapHandler = tracker
        let output = ConsoleTranscript()
        // Trap counts at the end of each tracked phase and, with redis, where redis begins in it
        // (taken as each marker arrives): every entry point, then the C allocator only.
        let marks = Mutex([String: [TrackerCounters]]())
        config.consoleOutput = { bytes in
            let text = output.appending(bytes)
            for marker in ["LV-BENCH-WARM", "LV-BENCH-REDIS", "LV-BENCH-NEXT "] {
                let reached = text.components(separatedBy: marker).count - 1
                marks.withLock { m in
                    if m[marker, default: []].count < reached { m[marker, default: []].append(tracker.statistics) }
                }
            }
        }
        say("starting the default image with \(cpus) vCPUs and --track user")
        let machine = try BenchmarkBoot.machine(config)
        // At each marker: untrack (the exitless path's rings drained and its region taken away),
        // and re-arm with traps only, then with the C allocator only; then let the guest go on.
        let afterDisarm = Mutex([TrackerCounters]())
        DispatchQueue.global().async {
            for phase in 1...3 {
                guard output.wait(for: "LV-BENCH-NEXT ", occurrences: phase) else { return }
                _ = try? tracker.detach(from: machine, timeout: 10)
                _ = try? machine.withGuestPaused { guest in
                    afterDisarm.withLock { $0.append(tracker.statistics) }
                    if phase < 3 {
                        tracker.setIncludesOperators(phase == 1)
                        _ = try tracker.arm(memory: guest.memory, vcpus: guest.vcpus)
                    }
                }
                machine.typeIntoConsole(Array("go\n".utf8))
            }
        }
        let outcome = machine.run()
        output.close()
        let text = output.text
        let ends = marks.withLock { $0["LV-BENCH-NEXT "] ?? [] }, redisBegins = marks.withLock { $0["LV-BENCH-REDIS"] ?? [] }
        guard case .exited(0) = outcome.ending, ends.count == 3, redis == nil || redisBegins.count >= 3 else {
            throw BenchmarkError.runFailed("benchmark boot failed: \(outcome.ending)\n\(text.suffix(2000))")
        }
        // The benchmark programs' windows (to where redis begins), then redis's (to the phase's end).
        // A phase starts where the previous one's detach left the counts.
        let warm = marks.withLock { $0["LV-BENCH-WARM"]?.first } ?? TrackerCounters()
        let starts = [warm] + afterDisarm.withLock { Array($0.prefix(2)) }
        let programsEnd = redis == nil ? ends : Array(redisBegins.prefix(3))
        report(TrackingBenchResults(parsing: text), windows: (0..<3).map { (starts[$0], programsEnd[$0]) },
               exitlessEnd: afterDisarm.withLock { $0.first }, exitlessStart: warm)
        if let redis { redis.report(text, windows: (0..<3).map { (programsEnd[$0], ends[$0]) }) }
        for note in tracker.diagnostics.prefix(12) { say("tracker note: \(note)") }
    }

    /// `windows`: the tracker's counts at the start and end of the benchmark programs in each
    /// tracked phase (exitless releases, traps only, then the C allocator only); `exitlessEnd`:
    /// the counts after the exitless phase's detach (its last rings drained).
    func report(_ results: TrackingBenchResults, windows: [(start: TrackerCounters, end: TrackerCounters)], exitlessEnd: TrackerCounters?,
                exitlessStart: TrackerCounters) {
        let bareExit = try? ExitRoundTrip.measure()
        let dilation = Double(HostDetection.detect().timeDilation)
        let allocations = Double(options.pairs + 23 * options.items)
        say("")
        say("== LeakVisor tracking benchmark (\(HostDetection.detect().name), \(options.cpus) vCPUs, guest time dilation \(Int(dilation))x, \(BuildKind.current) build)")
        if let bareExit { say(String(format: "bare exit round trip (out in a loop, tiny VM): %.1f us", bareExit)) }
        if let syscall = results.syscallNanoseconds {
            say(String(format: "guest syscall round trip (getppid; one exit to the monitor on kvm_pvm): %.1f us", syscall * dilation / 1000))
        }
        let modes = [("--track user --exitless", windows[0].end, windows[0].start), ("--track user", windows[1].end, windows[1].start),
                     ("--track user-malloc", windows[2].end, windows[2].start)]
        for (index, (mode, end, start)) in modes.enumerated() {
            let entries = end.entries - start.entries, returns = end.returns - start.returns
            let releases = end.releases - start.releases, nested = end.nestedEntries - start.nestedEntries
            let trapped = end.trappedEvents - start.trappedEvents
            say("\(mode): \(trapped) trapped events (\(entries) allocation entries, \(returns) returns, \(releases) releases, \(nested) nested or forwarded)"
                + String(format: ", %.2f per allocation", Double(trapped) / allocations))
            if index == 0, let exitlessEnd {
                let (releases, allocations) = (exitlessEnd.ringReleases - exitlessStart.ringReleases, exitlessEnd.ringAllocations - exitlessStart.ringAllocations)
                say("  and \(releases) releases and \(allocations) allocations (\(exitlessEnd.ringNestedEntries - exitlessStart.ringNestedEntries) nested or forwarded)"
                    + " through event rings without a trap, in the whole phase")
            }
            var extra = 0.0
            for name in ["lv-bench-malloc", "lv-bench-realistic"] {
                // The last four: the three tracked phases and the untracked one (after the warm-up run).
                guard let all = results.elapsed[name], all.count >= 4 else { say("  \(name): no result lines"); continue }
                let runs = Array(all.suffix(4))
                let tracked = Double(runs[index]) * dilation, untracked = Double(runs[3]) * dilation
                extra += tracked - untracked
                say(String(format: "  %@: tracked %.3f s, untracked %.3f s, ratio %.1fx", name, tracked / 1e9, untracked / 1e9, tracked / untracked))
            }
            // Per trapped event only where the traps are what costs (not with the exitless path's few).
            if Double(trapped) >= allocations / 2 {
                let perEvent = extra / Double(max(trapped, 1)) / 1000
                say(String(format: "  cost per trapped event: %.1f us", perEvent) + (bareExit.map { String(format: " (%.1f bare exits)", perEvent / $0) } ?? ""))
            }
            say(String(format: "  extra time per allocation (both programs): %.1f us", extra / allocations / 1000))
            say(Self.stackWalkLine(end, since: start))
        }
        if let last = windows.last?.end, last.unwindTablesBuilt > 0 {
            say(String(format: "CFI tables: %d built (one per host file), %.1f ms in all", last.unwindTablesBuilt,
                       Double(last.unwindTableNanoseconds) / 1e6))
        }
        // The ledger's own cost per live block, measured on a ledger holding 100,000 blocks.
        let ledger = AllocationLedger()
        for i in 0..<100_000 {
            ledger.allocate(in: PageTableRoot(cr3: 0x1000), address: 0x5555_0000_0000 + UInt64(i) * 48, size: 32, function: .malloc,
                            stack: [0x401000, 0x402000 + UInt64(i % 1000)], thread: 1, time: UInt64(i))
        }
        let use = ledger.memoryUse()
        say(String(format: "ledger: %.1f bytes per live block (100,000 blocks, dictionary slots included); %d interned stacks, %d bytes of frames",
                   use.bytesPerBlock, use.stacks, use.stackFrameBytes))
    }
}

extension TrackingBenchmark {
    /// The allocation stack walks between two counter readings: host time per walk (guest reads
    /// included) and the frames found per walk past the exact two, by CFI or by frame pointers.
    static func stackWalkLine(_ end: TrackerCounters, since start: TrackerCounters) -> String {
        let walks = end.stackWalks - start.stackWalks
        guard walks > 0 else { return "  stack walks: none" }
        let cfi = end.stackFramesByCFI - start.stackFramesByCFI, pointers = end.stackFramesByFramePointer - start.stackFramesByFramePointer
        let nanoseconds = Double(end.stackWalkNanoseconds &- start.stackWalkNanoseconds)
        return String(format: "  stack walks: %d, %.2f us each (host time, guest reads included), %.1f frames past the caller each (%.0f%% by CFI, the rest by frame pointers)",
                      walks, nanoseconds / Double(walks) / 1000, Double(cfi + pointers) / Double(walks),
                      cfi + pointers > 0 ? 100 * Double(cfi) / Double(cfi + pointers) : 0)
    }
}

/// Result lines of the benchmark guest programs, in order.
struct TrackingBenchResults {
    var elapsed: [String: [Int64]] = [:]
    var syscallNanoseconds: Double?

    init(parsing text: String) {
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(separator: " ")
            if words.count > 3, words[0] == "lv-prog", words[2] == "result",
               let field = words.first(where: { $0.hasPrefix("elapsed_ns=") }), let ns = Int64(field.dropFirst(11)) {
                elapsed[String(words[1]), default: []].append(ns)
            }
        }
        syscallNanoseconds = BenchFigures(parsing: text).syscallNanoseconds
    }
}

/// redis-benchmark against Debian's redis-server in the guest (over a Unix socket), in each of the
/// benchmark's three phases; its throughput tracked against untracked.
struct RedisBenchmarkRun {
    static let tools = ["/usr/bin/redis-server", "/usr/bin/redis-benchmark", "/usr/bin/redis-cli"]
    let requests: Int

    /// nil when the host has no redis to put in the guest.
    init?(requests: Int) {
        guard Self.tools.allSatisfy({ FileManager.default.isExecutableFile(atPath: $0) }) else { return nil }
        self.requests = requests
    }

    var additions: [String] { Self.tools.map { "\($0):\($0)" } }

    var script: String {
        let socket = "/tmp/lv-bench-redis.sock"
        return "redis-server --port 0 --unixsocket \(socket) --save '' --appendonly no --logfile /dev/null & "
            + "i=0; while [ ! -S \(socket) ] && [ $i -lt 600 ]; do sleep 1; i=$((i+1)); done; "
            + "redis-benchmark -s \(socket) -n \(requests) -c 4 -t set,get -q | tr '\\r' '\\n' | grep 'requests per second'; "
            + "redis-cli -s \(socket) shutdown nosave; wait; rm -f \(socket)"
    }

    /// Requests per second of SET and GET in each phase, in order.
    static func throughput(_ text: String) -> [String: [Double]] {
        var result: [String: [Double]] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(separator: " ")
            guard words.count >= 4, words[0] == "SET:" || words[0] == "GET:", words[2] == "requests", let rps = Double(words[1]) else { continue }
            result[String(words[0].dropLast()), default: []].append(rps)
        }
        return result
    }

    /// `windows`: the tracker's counts where redis began and ended in each tracked phase.
    func report(_ text: String, windows: [(start: TrackerCounters, end: TrackerCounters)]) {
        let runs = Self.throughput(text)
        say("redis-benchmark (Debian's redis-server on jemalloc, \(requests) requests each, 4 clients, a Unix socket):")
        for (mode, window) in zip(["--track user --exitless", "--track user", "--track user-malloc"], windows) {
            let (end, start) = (window.end, window.start)
            let trapped = end.trappedEvents - start.trappedEvents
            say(String(format: "  %@: %d trapped events (server, benchmark client, redis-cli), %.1f per request", mode, trapped,
                       Double(trapped) / Double(2 * requests)))
            say("  " + TrackingBenchmark.stackWalkLine(end, since: start))
        }
        for test in ["SET", "GET"] {
            guard let r = runs[test], r.count >= 4 else { say("  \(test): no result lines"); continue }
            say(String(format: "  %@: --track user --exitless %.0f%% of untracked throughput, --track user %.0f%%, --track user-malloc %.0f%% (guest-time requests per second: %.0f, %.0f, %.0f, untracked %.0f)",
                       test, 100 * r[0] / r[3], 100 * r[1] / r[3], 100 * r[2] / r[3], r[0], r[1], r[2], r[3]))
        }
    }
}
