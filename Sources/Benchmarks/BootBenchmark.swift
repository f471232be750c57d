import Foundation
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
