import AllocationLedger
import AllocationTracing
import Foundation
import GuestInterface
import Introspection
import LeakAnalysis
import Monitor
import Reachability
import Synchronization
import VMM

/// What `bench scan` measures, as plain values.
public struct ScanBenchmarkOptions: Sendable {
    /// Heap size of lv-scan-bench in MiB, and its block size in bytes.
    public var mib = 64
    public var blockBytes = 4096
    /// Pages the program dirties before the last scan, per thousand.
    public var permille = 10
    /// Rounds of (rescan with nothing written, write, rescan): the figures are their medians.
    public var repeats = 5
    public var memoryMiB = 512
    /// Stop the boot after this many seconds.
    public var timeout: Double = 2400
    public var scanLimits = ScanLimits()

    public init() {}
}

/// What a reachability scan costs, in one boot: full scans of a guest process with a large heap,
/// then incremental rescans after it dirtied nothing and 1% of its pages; printed on stdout.
public struct ScanBenchmark: Sendable {
    public let options: ScanBenchmarkOptions
    /// The default guest image's directory.
    public let image: URL

    public init(options: ScanBenchmarkOptions, image: URL) {
        self.options = options
        self.image = image
    }

    enum Kind { case full, nothingWritten, written }

    struct Phase {
        var name: String
        var kind: Kind
        /// What the scan found, not the scan itself: a kept verdict map would be copied by the
        /// scanner's next update (the product keeps only the ledger's latest), inflating its cost.
        var figures: ScanFigures
        var classified: Int
        var directLeaks: Int
        var incompleteNotes: [String]?
        var refreshed: Int
        var resolvedAhead: Int
        var concurrentSeconds: Double
        var pauseSeconds: Double
        var parkSeconds: Double
        /// The whole `scanLiveProcesses` call: the round, plus the cache's trim and the ledger's
        /// bookkeeping of the scan (its per-site history), which follow it.
        var callSeconds: Double
        /// The round's whole cost: its concurrent phase, then the scan (pause and after).
        var roundSeconds: Double { concurrentSeconds + figures.totalSeconds }
    }

    public func run() throws {
        let (mib, blockBytes, permille) = (options.mib, options.blockBytes, options.permille)
        var config = try BenchmarkBoot.configuration(kernel: image.appendingPathComponent("vmlinux"), image: image,
                                                     command: "lv-scan-bench \(mib) \(blockBytes)")
        config.memorySize = UInt64(options.memoryMiB) << 20
        // As `leakvisor run` starts it, so that its snapshot fits.
        config.vcpuCount = 2
        config.timeoutSeconds = options.timeout
        let kernel = try GuestKernel.load(vmlinux: image.appendingPathComponent("vmlinux").path, symbolFile: nil)
        let tracking = UserTracking(kernel: kernel, files: GuestSymbolFiles(roots: [image.appendingPathComponent("rootfs").path]),
                                    scansAtExit: false)
        let (tracker, scanner) = (tracking.tracker, tracking.scanner)
        scanner.limits = options.scanLimits
        config.trapHandler = tracker
        let output = ConsoleTranscript()
        let phases = Mutex([Phase]())
        config.consoleOutput = { bytes in output.append(bytes) }
        say("lv-scan-bench \(mib) MiB in \(blockBytes)-byte blocks, \(options.memoryMiB) MiB guest")
        let machine = try BenchmarkBoot.machine(config)
        // Made before `run()`: the tracker arms once the vCPUs run.
        tracker.onArmed { [weak machine] _ in
            guard let machine else { return }
            do {
                try scanner.useWriteLog(of: machine)
            } catch { say("page-write logging failed: \(error)") }
        }
        @Sendable func scan(_ name: String, _ kind: Kind) {
            if kind == .full { scanner.forgetCache() }
            let called = Date()
            let round = scanner.scanLiveProcesses(of: machine, pauseTimeout: 120)
            let callSeconds = Date().timeIntervalSince(called)
            guard let main = round.scans.max(by: { $0.figures.bytesScanned < $1.figures.bytesScanned }) else {
                say("  \(name): no process was scanned")
                return
            }
            phases.withLock {
                $0.append(Phase(name: name, kind: kind, figures: main.figures, classified: main.verdicts.count,
                                directLeaks: main.verdicts.values.filter { $0.reachability == .directLeak }.count,
                                incompleteNotes: main.complete ? nil : main.notes, refreshed: round.pagesRefreshed, resolvedAhead: round.blocksResolvedAhead,
                                concurrentSeconds: round.concurrentSeconds, pauseSeconds: round.pauseSeconds,
                                parkSeconds: round.parkSeconds, callSeconds: callSeconds))
            }
            say("  \(name): done")
        }
        // The program says when its heap is built and when it dirtied its pages; it then waits for a line.
        DispatchQueue.global().async {
            // Once the figures are taken (or cannot be), the run ends here. Letting the program free
            // its heap and exit would measure nothing and, at 1 GiB, take many minutes of traps and
            // emulated teardown.
            defer { machine.interrupt() }
            guard output.wait(for: "ready-scan") else { return }
            scan("full scan 1", .full)
            scan("full scan 2", .full)
            for round in 1...options.repeats {
                scan("rescan \(round), nothing written", .nothingWritten)
                machine.typeIntoConsole(Array("dirty \(permille)\n".utf8))
                guard output.wait(for: "dirtied pages=", occurrences: round) else { return }
                scan("rescan \(round) after \(Double(permille) / 10)% of pages written", .written)
            }
        }
        let outcome = machine.run()
        output.close()
        let results = phases.withLock { $0 }
        let text = output.text
        guard results.count == 2 + 2 * options.repeats else {
            throw BenchmarkError.runFailed("benchmark run failed: \(outcome.ending), \(results.count) scans\n\(text.suffix(2000))")
        }
        say("")
        say("== LeakVisor reachability scan benchmark (\(HostDetection.detect().name), \(BuildKind.current) build), lv-scan-bench \(mib) MiB")
        let dirtiedLine = text.split(whereSeparator: \.isNewline).first { $0.contains("dirtied pages=") }.map(String.init) ?? ""
        for p in results {
            let f = p.figures
            say(String(format: "%@: %.1f MiB scanned in %.3f s (%.3f s with the concurrent phase) = %.2f GiB/s; pages read %d in the pause + %d before it, %d reused; pause %.1f ms (vCPUs parked after %.1f ms)%@; %d blocks classified, %d direct leaks%@",
                       p.name, Double(f.bytesScanned) / 1048576, f.totalSeconds, p.roundSeconds,
                       Double(f.bytesScanned) / 1073741824 / max(f.totalSeconds, 1e-9),
                       f.pagesRead, p.refreshed, f.pagesReused, p.pauseSeconds * 1000, p.parkSeconds * 1000,
                       f.markedAfterPause == true ? ", marked after it" : ", marked in it", p.classified, p.directLeaks,
                       p.incompleteNotes.map { "; INCOMPLETE: " + $0.joined(separator: "; ") } ?? ""))
            if let phases = f.phases {
                let kept = f.markingKept == true ? " (the last marking's result, its inputs unchanged)" : ""
                say("    \(phases.description)\(kept); blocks resolved \(f.blocksResolved ?? 0) (+ \(p.resolvedAhead) before the pause), kept \(f.blocksReused ?? 0); concurrent phase \(String(format: "%.1f", p.concurrentSeconds * 1000)) ms; whole call \(String(format: "%.1f", p.callSeconds * 1000)) ms (with the ledger's bookkeeping)")
            }
        }
        say("guest: \(dirtiedLine)")
        // Each round's whole cost, its concurrent phase included; rescans by their median.
        let fulls = results.filter { $0.kind == .full }
        let written = results.filter { $0.kind == .written }
        let rescans = results.filter { $0.kind != .full }
        // The quicker full scan: the one a slow first scan (caches cold, the machine busy) does not flatter.
        let full = fulls.map(\.roundSeconds).min() ?? 0
        let incremental = Self.median(written.map(\.roundSeconds))
        say(String(format: "incremental rescan after %.1f%% of pages written (median of %d): %.4f s vs %.3f s (the quicker full scan) = %.1f%% of a full scan (%.1f%%..%.1f%%)",
                   Double(permille) / 10, written.count, incremental, full, incremental / full * 100,
                   (written.map(\.roundSeconds).min() ?? 0) / full * 100, (written.map(\.roundSeconds).max() ?? 0) / full * 100))
        let pauses = rescans.map(\.pauseSeconds)
        say(String(format: "guest pause of a rescan (all %d): median %.1f ms, longest %.1f ms; of a full scan %.1f ms",
                   pauses.count, Self.median(pauses) * 1000, (pauses.max() ?? 0) * 1000,
                   fulls.map(\.pauseSeconds).reduce(0, +) / Double(fulls.count) * 1000))
        // The quicker full call: the first also counts the ledger's site tally from every block.
        let fullCall = fulls.map(\.callSeconds).min() ?? 0
        let writtenCall = Self.median(written.map(\.callSeconds))
        say(String(format: "  whole calls, the ledger's bookkeeping included: %.4f s vs %.3f s = %.1f%%",
                   writtenCall, fullCall, writtenCall / fullCall * 100))
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
