import Foundation
import SnapshotFile
import Synchronization
import VMM

/// What `bench boot` measures, as plain values.
public struct BootBenchmarkOptions: Sendable {
    /// Boots of the vmlinux kernel to take the median of.
    public var runs = 3
    public var memoryBytes: UInt64 = 512 << 20
    /// lv-compute iterations and lv-syscalls calls (the same on host and guest).
    public var iterations = 400_000_000
    public var syscalls = 2000
    public var skipBzImage = false
    /// Stop any single boot after this many seconds.
    public var timeout: Double = 1800

    public init() {}
}

/// Boot time to user space (median of runs) and guest user-mode speed relative to the same
/// static program on the host, in one run, printed on stdout.
public struct BootBenchmark: Sendable {
    public let options: BootBenchmarkOptions
    /// The default guest image's directory.
    public let image: URL

    public init(options: BootBenchmarkOptions, image: URL) {
        self.options = options
        self.image = image
    }

    public func run() throws {
        let (iterations, syscalls, runs) = (options.iterations, options.syscalls, options.runs)
        let programs = "lv-compute \(iterations); lv-syscalls \(syscalls)"
        say("host: lv-compute and lv-syscalls (static, same binaries as in the guest)")
        let hostOutput = try Self.runOnHost(image.appendingPathComponent("host-bin"), iterations: iterations, syscalls: syscalls)
        let host = BenchFigures(parsing: hostOutput)
        for line in hostOutput.split(separator: "\n") { say("  host \(line)") }

        var boots: [Double] = []
        var guest = BenchFigures()
        for i in 1...runs {
            let r = try boot(kernel: image.appendingPathComponent("vmlinux"), command: programs)
            say(String(format: "boot %d/%d (vmlinux): user space after %.1f s, run %.1f s", i, runs, r.toUserSpace, r.total))
            boots.append(r.toUserSpace)
            guest = r.figures
            for line in r.guestLines { say("  guest \(line)") }
        }
        var bzImageBoot: Double?
        var bzImageFailure: String?
        if !options.skipBzImage {
            do {
                let r = try boot(kernel: image.appendingPathComponent("bzImage"), command: "true")
                say(String(format: "boot (bzImage): user space after %.1f s", r.toUserSpace))
                bzImageBoot = r.toUserSpace
            } catch {
                // The comparison must not cost the figures already measured.
                bzImageFailure = "\(error)".split(separator: "\n").first.map(String.init) ?? "failed"
                say("boot (bzImage): \(bzImageFailure ?? "")")
            }
        }

        // Snapshots (issue 13): one more cold boot saves one where the guest waits for its work;
        // then each restore runs the same command as the boots above.
        let snapshot = try snapshotRuns(kernel: image.appendingPathComponent("vmlinux"), command: programs)

        let median = boots.sorted()[boots.count / 2]
        // Guest programs time themselves with the guest's clock, which runs `dilation` times slower.
        let dilation = Double(HostDetection.detect().timeDilation)
        say("")
        say("== LeakVisor benchmark (\(HostDetection.detect().name), \(options.memoryBytes >> 20) MiB, 1 vCPU, guest time dilation \(Int(dilation))x)")
        say(String(format: "boot to user space, vmlinux: median %.1f s of %d runs (%@)", median, runs,
                   boots.map { String(format: "%.1f", $0) }.joined(separator: ", ")))
        if let bz = bzImageBoot {
            say(String(format: "boot to user space, bzImage: %.1f s (%.2fx the vmlinux median)", bz, bz / median))
        } else if let why = bzImageFailure {
            say("boot to user space, bzImage: not reached (\(why))")
        }
        let restoreMedian = snapshot.restores.map(\.restore).sorted()[snapshot.restores.count / 2]
        let startMedian = snapshot.restores.map(\.toCommand).sorted()[snapshot.restores.count / 2]
        say(String(format: "snapshot: saved in %.2f s (guest paused), %d MiB on disk for %d MiB of guest RAM",
                   snapshot.saved.pausedSeconds, snapshot.saved.bytesOnDisk >> 20, options.memoryBytes >> 20))
        say(String(format: "restore from the snapshot: median %.0f ms to a runnable guest, %.2f s until the guest took its command"
                   + " (%d runs: %@); cold boot to user space %.1f s: %.0fx faster to the command",
                   restoreMedian * 1000, startMedian, snapshot.restores.count,
                   snapshot.restores.map { String(format: "%.2f", $0.toCommand) }.joined(separator: ", "), median, median / startMedian))
        if let g = guest.computeNanoseconds.map({ Double($0) * dilation }), let h = host.computeNanoseconds.map({ Double($0) }) {
            say(String(format: "user-mode compute (lv-compute %d): guest %.3f s, host %.3f s, guest/host time ratio %.3f",
                       iterations, g / 1e9, h / 1e9, g / h))
        }
        if let g = guest.syscallNanoseconds.map({ $0 * dilation }), let h = host.syscallNanoseconds {
            say(String(format: "syscall round trip (getppid): guest %.1f us, host %.3f us, ratio %.0fx",
                       g / 1000, h / 1000, g / h))
        }
    }

    struct BootResult {
        let toUserSpace: Double
        let total: Double
        let figures: BenchFigures
        /// The lines the guest programs printed (their own clock: dilated on kvm_pvm).
        let guestLines: [String]
    }

    func boot(kernel: URL, command: String) throws -> BootResult {
        var config = try BenchmarkBoot.configuration(kernel: kernel, image: image, command: command)
        config.memorySize = options.memoryBytes
        config.timeoutSeconds = options.timeout
        let output = ConsoleTranscript()
        config.consoleOutput = { bytes in output.append(bytes) }
        let machine = try Machine(config)
        let outcome = machine.run()
        let text = output.text
        guard case .exited(0) = outcome.ending, let toUser = outcome.secondsToUserSpace else {
            throw BenchmarkError.runFailed("benchmark boot of \(kernel.lastPathComponent) failed: \(outcome.ending)\n\(text.suffix(2000))")
        }
        let lines = text.split(whereSeparator: \.isNewline).map(String.init)
            .filter { $0.hasPrefix("compute:") || $0.hasPrefix("syscalls:") }
        return BootResult(toUserSpace: toUser, total: outcome.totalSeconds, figures: BenchFigures(parsing: text), guestLines: lines)
    }

    struct SnapshotFigures {
        let saved: SnapshotSaveReport
        /// Per restore: seconds to a runnable machine (file read, KVM state, devices), and until
        /// the guest took its payload (the command starts then).
        let restores: [(restore: Double, toCommand: Double)]
    }

    /// A cold boot that saves a snapshot where the guest waits for its payload, then `runs`
    /// (at least 3) restores of it, each running `command` to its end.
    func snapshotRuns(kernel: URL, command: String) throws -> SnapshotFigures {
        var config = try BenchmarkBoot.configuration(kernel: kernel, image: image, command: command)
        config.memorySize = options.memoryBytes
        config.timeoutSeconds = options.timeout
        config.consoleOutput = { _ in }
        let payload = config.payload ?? []
        let identity = SnapshotCache.identity(of: config)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("leakvisor-bench-\(getpid()).lvsnap").path
        defer { unlink(path) }
        let outcome = Mutex<Result<SnapshotSaveReport, VMMError>?>(nil)
        let machine = try Machine.bootSavingSnapshot(config, to: path, identity: identity, payload: { payload },
                                                     saved: { result in outcome.withLock { $0 = result } })
        let boot = machine.run()
        guard case .exited(0) = boot.ending, let saved = try outcome.withLock({ try $0?.get() }) else {
            throw BenchmarkError.runFailed("the snapshot boot failed: \(boot.ending)")
        }
        say(String(format: "snapshot boot: user space after %.1f s, snapshot saved (guest paused %.2f s)",
                   boot.secondsToUserSpace ?? 0, saved.pausedSeconds))
        var restores: [(restore: Double, toCommand: Double)] = []
        let count = max(3, options.runs)
        for i in 1...count {
            let started = ContinuousClock.now
            let restored: RestoredSnapshot
            do { restored = try SnapshotReader.read(path, expecting: identity) } catch {
                throw BenchmarkError.runFailed("restore \(i): \(error)")
            }
            let copy = try Machine(restoring: restored, config)
            let ready = (ContinuousClock.now - started) / .seconds(1)
            let taken = Mutex<Double?>(nil)
            let watcher = Thread {
                while taken.withLock({ $0 }) == nil, !copy.payloadTaken { usleep(1000) }
                taken.withLock { if $0 == nil { $0 = (ContinuousClock.now - started) / .seconds(1) } }
            }
            watcher.start()
            let run = copy.run()
            guard case .exited(0) = run.ending else { throw BenchmarkError.runFailed("restore \(i): \(run.ending)") }
            let toCommand = taken.withLock { s -> Double in
                if s == nil { s = (ContinuousClock.now - started) / .seconds(1) }
                return s ?? 0
            }
            say(String(format: "restore %d/%d: runnable after %.0f ms, command started after %.2f s, run %.1f s", i, count,
                       ready * 1000, toCommand, (ContinuousClock.now - started) / .seconds(1)))
            restores.append((ready, toCommand))
        }
        return SnapshotFigures(saved: saved, restores: restores)
    }

    static func runOnHost(_ bin: URL, iterations: Int, syscalls: Int) throws -> String {
        var text = ""
        for (name, arg) in [("lv-compute", iterations), ("lv-syscalls", syscalls * 100)] {
            let p = Process()
            p.executableURL = bin.appendingPathComponent(name)
            p.arguments = [String(arg)]
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            text += String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
        }
        return text
    }
}
