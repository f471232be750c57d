import ArgumentParser
import Foundation
import GuestImage
import Synchronization
import VMM

/// `leakvisor bench`: the benchmarks. `boot` (the default) and `tracking`.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: boot and guest speed (default), the cost of allocation tracking, and of reachability scans.",
        subcommands: [BootBench.self, TrackingBench.self, ScanBench.self],
        defaultSubcommand: BootBench.self)
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
            and runs the same static programs on the host. Prints medians and ratios.
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
        let programs = "lv-compute \(iterations); lv-syscalls \(syscalls)"
        say("host: lv-compute and lv-syscalls (static, same binaries as in the guest)")
        let hostOutput = try Self.runOnHost(image.appendingPathComponent("host-bin"), iterations: iterations, syscalls: syscalls)
        let host = BenchFigures(parsing: hostOutput)
        for line in hostOutput.split(separator: "\n") { say("  host \(line)") }

        var boots: [Double] = []
        var guest = BenchFigures()
        for i in 1...runs {
            let r = try boot(kernel: image.appendingPathComponent("vmlinux"), image: image, command: programs)
            say(String(format: "boot %d/%d (vmlinux): user space after %.1f s, run %.1f s", i, runs, r.toUserSpace, r.total))
            boots.append(r.toUserSpace)
            guest = r.figures
            for line in r.guestLines { say("  guest \(line)") }
        }
        var bzImageBoot: Double?
        var bzImageFailure: String?
        if !skipBzimage {
            do {
                let r = try boot(kernel: image.appendingPathComponent("bzImage"), image: image, command: "true")
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
        say("== LeakVisor benchmark (\(HostDetection.detect().name), \(memory.bytes >> 20) MiB, 1 vCPU, guest time dilation \(Int(dilation))x)")
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

    func boot(kernel: URL, image: URL, command: String) throws -> BootResult {
        var config = try Self.configuration(kernel: kernel, image: image, command: command)
        config.memorySize = memory.bytes
        config.timeoutSeconds = timeout
        let output = ConsoleTranscript()
        config.consoleOutput = { bytes in output.append(bytes) }
        let machine = try Machine(config)
        let outcome = machine.run()
        let text = output.text
        guard case .exited(0) = outcome.ending, let toUser = outcome.secondsToUserSpace else {
            throw ValidationError("benchmark boot of \(kernel.lastPathComponent) failed: \(outcome.ending)\n\(text.suffix(2000))")
        }
        let lines = text.split(whereSeparator: \.isNewline).map(String.init)
            .filter { $0.hasPrefix("compute:") || $0.hasPrefix("syscalls:") }
        return BootResult(toUserSpace: toUser, total: outcome.totalSeconds, figures: BenchFigures(parsing: text), guestLines: lines)
    }

    /// A machine booting `kernel` with the image's initramfs and `command` (a shell command line)
    /// as the guest command: what every benchmark boot starts from.
    static func configuration(kernel: URL, image: URL, command: String) throws -> MachineConfiguration {
        var config = MachineConfiguration(kernel: try RunSession.readFile(kernel.path), kernelName: kernel.path)
        var initrd = try RunSession.readFile(image.appendingPathComponent("initramfs.cpio").path)
        while initrd.count % 4 != 0 { initrd.append(0) }
        var archive = CPIOArchive()
        archive.addFile("/leakvisor/command", contents: Array(GuestCommand.script(arguments: ["sh", "-c", command]).utf8), mode: 0o755)
        config.initrd = initrd + archive.encoded()
        return config
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

/// Writes a line to stdout at once (unbuffered), so progress shows while the benchmark runs.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Figures parsed from lv-compute and lv-syscalls output lines.
struct BenchFigures {
    var computeNanoseconds: UInt64?
    var syscallNanoseconds: Double?

    init() {}

    init(parsing text: String) {
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(separator: " ")
            if line.hasPrefix("compute:"), let i = words.firstIndex(of: "in"), i + 1 < words.count {
                computeNanoseconds = UInt64(words[i + 1])
            }
            if line.hasPrefix("syscalls:"), let open = line.firstIndex(of: "("), let ns = line[line.index(after: open)...].split(separator: " ").first {
                syscallNanoseconds = Double(ns)
            }
        }
    }
}
