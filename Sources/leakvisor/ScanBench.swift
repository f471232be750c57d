import Monitor
import AllocationLedger
import AllocationTracing
import ArgumentParser
import Foundation
import GuestInterface
import Introspection
import LeakAnalysis
import Reachability
import Synchronization
import VMM

/// `leakvisor bench scan`: what a reachability scan costs, in one boot: full scans of a guest
/// process with a large heap, then incremental rescans after it dirtied nothing and 1% of its pages.
struct ScanBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Measure reachability scans: full-scan throughput and incremental rescans after 1% of pages changed.",
        discussion: """
            Boots the default image once, tracked, and runs lv-scan-bench, which builds a heap of --mib MiB \
            in --block-byte blocks linked from a global (plus 16 leaked blocks). Then, with the program \
            waiting: two full scans (nothing cached), an incremental scan with nothing written, and one \
            after the program rewrote one word in --permille/1000 of its heap pages. Prints bytes scanned, \
            GiB/s, pages read, and the pause, for each, and the incremental-to-full ratio.
            """)

    @Option(help: "Heap size of lv-scan-bench in MiB.")
    var mib: Int = 64

    @Option(help: "Block size of lv-scan-bench in bytes.")
    var blockBytes: Int = 4096

    @Option(help: "Pages the program dirties before the last scan, per thousand.")
    var permille: Int = 10

    @Option(help: "Guest memory in MiB.")
    var memoryMiB: Int = 512

    @Option(help: "Stop the boot after this many seconds.")
    var timeout: Double = 2400

    @Option(help: ArgumentHelp("As for `run`: the longest pause of a scan round.", valueName: "duration"))
    var scanPauseLimit = DurationArgument(seconds: ScanLimits.defaultPauseSeconds)

    @Option(help: ArgumentHelp("As for `run`: the longest a scan round may take.", valueName: "duration"))
    var scanTimeLimit = DurationArgument(seconds: ScanLimits.defaultScanSeconds)

    @Option(help: ArgumentHelp("As for `run`: the memory a scan may use.", valueName: "size"))
    var scanMemoryLimit = SizeArgument(bytes: ScanLimits.defaultMemoryBytes)

    func validate() throws {
        if mib < 1 || mib > 1024 || blockBytes < 64 || permille < 0 || permille > 1000 { throw ValidationError("out-of-range option") }
        if memoryMiB < mib * 2 + 128 { throw ValidationError("--memory-mi-b must be at least 2 x --mib + 128") }
    }

    #if DEBUG
    static let buildKind = "debug"
    #else
    static let buildKind = "release"
    #endif

    struct Phase {
        var name: String
        var scan: SpaceScan
        var refreshed: Int
        var pauseSeconds: Double
    }

    func run() throws {
        let image = try GuestImageLocator.requireDefaultDirectory()
        var config = try BootBench.configuration(kernel: image.appendingPathComponent("vmlinux"), image: image,
                                                 command: "lv-scan-bench \(mib) \(blockBytes)")
        config.memorySize = UInt64(memoryMiB) << 20
        config.timeoutSeconds = timeout
        let kernel = try GuestKernel.load(vmlinux: image.appendingPathComponent("vmlinux").path, symbolFile: nil)
        let tracking = UserTracking(kernel: kernel, files: GuestSymbolFiles(roots: [image.appendingPathComponent("rootfs").path]),
                                    scansAtExit: false)
        let (tracker, scanner) = (tracking.tracker, tracking.scanner)
        scanner.limits = ScanLimits(pauseSeconds: scanPauseLimit.seconds, scanSeconds: scanTimeLimit.seconds,
                                            memoryBytes: scanMemoryLimit.bytes)
        config.trapHandler = tracker
        let machineBox = Mutex<Machine?>(nil)
        let output = ConsoleTranscript()
        let phases = Mutex([Phase]())
        let started = Mutex(Set<String>())
        tracker.onArmed { _ in
            guard let machine = machineBox.withLock({ $0 }) else { return }
            do {
                try scanner.useWriteLog(of: machine)
            } catch { say("page-write logging failed: \(error)") }
        }
        @Sendable func scan(_ name: String, machine: Machine, full: Bool) {
            if full { scanner.forgetCache() }
            let round = scanner.scanLiveProcesses(of: machine, pauseTimeout: 120)
            guard let main = round.scans.max(by: { $0.figures.bytesScanned < $1.figures.bytesScanned }) else {
                say("  \(name): no process was scanned")
                return
            }
            phases.withLock { $0.append(Phase(name: name, scan: main, refreshed: round.pagesRefreshed, pauseSeconds: round.pauseSeconds)) }
            say("  \(name): done")
        }
        config.consoleOutput = { bytes in
            let text = output.appending(bytes)
            func once(_ marker: String, _ body: @escaping @Sendable (Machine) -> Void) {
                guard text.contains(marker), started.withLock({ $0.insert(marker).inserted }),
                      let machine = machineBox.withLock({ $0 }) else { return }
                DispatchQueue.global().async { body(machine) }
            }
            once("ready-scan") { machine in
                scan("full scan 1", machine: machine, full: true)
                scan("full scan 2", machine: machine, full: true)
                scan("rescan, nothing written", machine: machine, full: false)
                machine.typeIntoConsole(Array("dirty \(permille)\n".utf8))
            }
            once("dirtied pages=") { machine in
                scan("rescan after \(Double(permille) / 10)% of pages written", machine: machine, full: false)
                machine.typeIntoConsole(Array("quit\n".utf8))
            }
        }
        say("booting the default image (several minutes on kvm_pvm); lv-scan-bench \(mib) MiB in \(blockBytes)-byte blocks")
        let machine = try Machine(config)
        machineBox.withLock { $0 = machine }
        let outcome = machine.run()
        let results = phases.withLock { $0 }
        let text = output.text
        guard case .exited(0) = outcome.ending, results.count == 4 else {
            throw ValidationError("benchmark run failed: \(outcome.ending), \(results.count) scans\n\(text.suffix(2000))")
        }
        say("")
        say("== LeakVisor reachability scan benchmark (\(HostDetection.detect().name), \(Self.buildKind) build), lv-scan-bench \(mib) MiB")
        let dirtiedLine = text.split(whereSeparator: \.isNewline).first { $0.contains("dirtied pages=") }.map(String.init) ?? ""
        for p in results {
            let f = p.scan.figures
            let direct = p.scan.verdicts.values.filter { $0.reachability == .directLeak }.count
            say(String(format: "%@: %.1f MiB scanned in %.3f s = %.2f GiB/s; pages read %d in the pause + %d before it, %d reused; pause %.1f ms; %d blocks classified, %d direct leaks%@",
                       p.name, Double(f.bytesScanned) / 1048576, f.totalSeconds, Double(f.bytesScanned) / 1073741824 / max(f.totalSeconds, 1e-9),
                       f.pagesRead, p.refreshed, f.pagesReused, p.pauseSeconds * 1000, p.scan.verdicts.count, direct,
                       p.scan.complete ? "" : "; INCOMPLETE: " + p.scan.notes.joined(separator: "; ")))
        }
        say("guest: \(dirtiedLine)")
        let full = (results[0].scan.figures.totalSeconds + results[1].scan.figures.totalSeconds) / 2
        let incremental = results[3].scan.figures.totalSeconds
        say(String(format: "incremental rescan after %.1f%% of pages written: %.3f s vs %.3f s full = %.1f%% of a full scan (pause %.1f ms vs %.1f ms)",
                   Double(permille) / 10, incremental, full, incremental / full * 100, results[3].pauseSeconds * 1000,
                   (results[0].pauseSeconds + results[1].pauseSeconds) / 2 * 1000))
    }
}
