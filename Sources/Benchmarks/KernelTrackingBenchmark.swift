import AllocationLedger
import AllocationTracing
import Foundation
import GuestInterface
import Introspection
import LeakAnalysis
import Reachability
import Synchronization
import VMM

/// What `bench kernel` measures, as plain values.
public struct KernelTrackingBenchmarkOptions: Sendable {
    /// Rounds of the workload (each: a file created, read and removed, a pipe, and 3 fork/execs).
    public var rounds = 60
    public var cpus = 2
    /// Stop the boot after this many seconds.
    public var timeout: Double = 2400
    /// Kernel leak scans after the tracked phase (the first full, the others incremental), and
    /// the seconds the guest runs between two of them.
    public var scans = 5
    public var scanInterval: Double = 2

    public init() {}
}

/// The cost of `--track kernel`, in one boot: a kernel-allocation-heavy busybox workload
/// (fork/exec, files created and removed, pipes) with the kernel tracker armed, then again after
/// detaching it; traps per kernel allocation event, cost per trap next to a bare exit round trip,
/// and what kernel leak scans cost: the first (full) one and the incremental ones after it, which
/// read only the frames the write log says were written since. Printed on stdout.
public struct KernelTrackingBenchmark: Sendable {
    public let options: KernelTrackingBenchmarkOptions
    /// The default guest image's directory.
    public let image: URL

    public init(options: KernelTrackingBenchmarkOptions, image: URL) {
        self.options = options
        self.image = image
    }

    /// The guest's workload: `rounds` rounds, between console markers the host times.
    static func workload(rounds: Int, phase: Int) -> String {
        "echo LV-KBENCH-START \(phase); i=0; while [ $i -lt \(rounds) ]; do echo round$i > /tmp/kb; cat /tmp/kb | wc -c > /dev/null;"
            + " ls /proc/self > /dev/null; sh -c true; rm /tmp/kb; i=$((i+1)); done; echo LV-KBENCH-END \(phase)"
    }

    public func run() throws {
        let command = Self.workload(rounds: options.rounds, phase: 1) + "; read a; " + Self.workload(rounds: options.rounds, phase: 2)
        var config = try BenchmarkBoot.configuration(kernel: image.appendingPathComponent("vmlinux"), image: image, command: command)
        config.vcpuCount = options.cpus
        config.timeoutSeconds = options.timeout
        let kernel = try GuestKernel.load(vmlinux: image.appendingPathComponent("vmlinux").path, symbolFile: nil)
        let tracker = KernelAllocationTracker(kernel: kernel)
        config.trapHandler = tracker
        let output = ConsoleTranscript()
        // Host monotonic time at each marker, and the tracker's counters at the end of the tracked phase.
        let marks = Mutex([String: UInt64]())
        let counted = Mutex<(KernelTrackerCounters, KernelLedgerCounters)?>(nil)
        config.consoleOutput = { bytes in
            let text = output.appending(bytes)
            let now = DispatchTime.now().uptimeNanoseconds
            marks.withLock { m in
                for marker in ["LV-KBENCH-START 1", "LV-KBENCH-END 1", "LV-KBENCH-START 2", "LV-KBENCH-END 2"]
                where m[marker] == nil && text.contains(marker) {
                    m[marker] = now
                    if marker == "LV-KBENCH-END 1" { counted.withLock { $0 = (tracker.statistics, tracker.ledger.counters) } }
                }
            }
        }
        say("the default image with \(options.cpus) vCPUs and --track kernel")
        let machine = try BenchmarkBoot.machine(config)
        // After the tracked phase: kernel leak scans of the idle guest (their pauses), then detach,
        // then the untracked phase.
        let scans = Mutex<[TimedScan]>([])
        DispatchQueue.global().async {
            guard output.wait(for: "LV-KBENCH-END 1") else { return }
            scans.withLock { $0 = scanRepeatedly(machine, kernel: kernel, tracker: tracker) }
            _ = try? machine.withGuestPaused(timeout: 60) { tracker.disarm($0) }
            machine.typeIntoConsole(Array("go\n".utf8))
        }
        let outcome = machine.run()
        output.close()
        let m = marks.withLock { $0 }
        guard case .exited(0) = outcome.ending, let counts = counted.withLock({ $0 }),
              let s1 = m["LV-KBENCH-START 1"], let e1 = m["LV-KBENCH-END 1"], let s2 = m["LV-KBENCH-START 2"], let e2 = m["LV-KBENCH-END 2"] else {
            throw BenchmarkError.runFailed("benchmark boot failed: \(outcome.ending)\n\(output.text.suffix(2000))")
        }
        report(tracked: Double(e1 &- s1) / 1e9, untracked: Double(e2 &- s2) / 1e9, counters: counts.0, ledger: counts.1,
               scans: scans.withLock { $0 })
    }

    /// One kernel scan and the guest's pause for it (from asking for the pause to resuming).
    struct TimedScan {
        var result: KernelScanResult
        var pauseSeconds: Double
        /// Frames the write log named since the previous scan (nil: no log).
        var writtenFrames: Int?
    }

    /// `options.scans` kernel leak scans, `options.scanInterval` apart, as a run makes them: one
    /// scanner and frame cache, and a reader of the guest's write log harvested in each pause.
    func scanRepeatedly(_ machine: Machine, kernel: GuestKernel, tracker: KernelAllocationTracker) -> [TimedScan] {
        let log = try? machine.startWriteLog()
        defer { if let log { try? machine.stopWriteLog(log) } }
        var scanner = KernelLeakScanner()
        let cache = FrameCandidateCache(window: .kernel)
        var done: [TimedScan] = []
        for i in 0..<options.scans {
            if i > 0 { Thread.sleep(forTimeInterval: options.scanInterval) }
            let started = DispatchTime.now().uptimeNanoseconds
            let scanned = try? machine.withGuestPaused(timeout: 60) { guest -> (KernelScanResult, Int?)? in
                guard let view = try? KernelView(kernel: kernel, memory: guest.memory, vcpus: guest.vcpus) else { return nil }
                let objects = tracker.ledger.liveObjects().map {
                    KernelScanObject(address: $0.address, size: $0.allocatedSize, allocatedAt: Double($0.time) / 1e9)
                }
                let written = log.flatMap { try? Set($0.harvest().frames) }
                return (scanner.scan(view: view, objects: objects, freedSlots: tracker.ledger.freedSlots, now: tracker.clock.seconds,
                                     writtenFrames: written, cache: cache), written?.count)
            }
            let pause = Double(DispatchTime.now().uptimeNanoseconds &- started) / 1e9
            if let (result, written) = scanned ?? nil { done.append(TimedScan(result: result, pauseSeconds: pause, writtenFrames: written)) }
        }
        return done
    }

    func report(tracked: Double, untracked: Double, counters: KernelTrackerCounters, ledger: KernelLedgerCounters, scans: [TimedScan]) {
        let bareExit = try? ExitRoundTrip.measure()
        say("")
        say("== LeakVisor kernel tracking benchmark (\(HostDetection.detect().name), \(options.cpus) vCPUs, \(BuildKind.current) build)")
        if let bareExit { say(String(format: "bare exit round trip (out in a loop, tiny VM): %.1f us", bareExit)) }
        let events = ledger.totalAllocations + ledger.totalFrees + ledger.freedAllocatedBeforeTracking + ledger.nullFrees
        say("workload: \(options.rounds) rounds of a file created, read and removed, a pipe, and 3 fork/execs (busybox)")
        say(String(format: "  tracked %.2f s, untracked %.2f s, ratio %.2fx", tracked, untracked, tracked / untracked))
        say("  kernel events: \(ledger.totalAllocations) allocations, \(ledger.totalFrees) frees of tracked objects,"
            + " \(ledger.freedAllocatedBeforeTracking) of older ones, \(ledger.nullFrees) null frees")
        say(String(format: "  traps: %d for %d tracepoint and hook events (%.2f per event; %.2f per kernel allocation or free seen)",
                   counters.totalTraps, counters.totalEvents, Double(counters.totalTraps) / Double(max(counters.totalEvents, 1)),
                   Double(counters.totalTraps) / Double(max(events, 1))))
        let perTrap = (tracked - untracked) * 1e6 / Double(max(counters.totalTraps, 1))
        say(String(format: "  cost per trap: %.1f us", perTrap) + (bareExit.map { String(format: " (%.1f bare exits)", perTrap / $0) } ?? "")
            + " (the difference of the two phases over the traps: noisy when it is small)")
        say(String(format: "kernel leak scans of the idle guest, %g s apart (the guest paused for each):", options.scanInterval))
        for (i, scan) in scans.enumerated() {
            let s = scan.result.statistics
            let kind = i == 0 || (s.cache?.framesReused ?? 0) == 0 ? "full" : "incremental"
            say("  scan \(i + 1) (\(kind)): " + String(format: "pause %.2f s = %.2f s roots + %.2f s marking; %d objects, %.1f MiB of roots, %.1f MiB scanned",
                       scan.pauseSeconds, s.rootSeconds, s.markSeconds, s.objects, Double(s.totalRootBytes) / 1048576,
                       Double(s.bytesScanned) / 1048576)
                + (s.cache.map { String(format: "; %d pages read, %d reused, cache %.1f MiB", $0.framesRead, $0.framesReused,
                                        Double($0.storedBytes) / 1048576) } ?? "")
                + (scan.writtenFrames.map { "; \($0) frames written since the previous scan" } ?? "; no write log")
                + (scan.result.complete ? "" : "; INCOMPLETE: \(scan.result.problems.joined(separator: "; "))"))
        }
        let later = scans.dropFirst().map(\.pauseSeconds)
        if let first = scans.first, !later.isEmpty {
            say(String(format: "  full scan pause %.2f s; incremental pauses %.2f-%.2f s (median %.2f s)", first.pauseSeconds,
                       later.min() ?? 0, later.max() ?? 0, later.sorted()[later.count / 2]))
        }
    }
}
