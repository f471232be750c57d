import Foundation

/// The host peers on the benchmark programs `bench tracking` runs in the guest: the same sources
/// built for the host (the image's `host-bin`), run natively, under LeakSanitizer (a build with
/// `-fsanitize=leak`), heaptrack and valgrind's memcheck; each program times itself, so tool
/// start-up and the leak check at exit are left out, as in the guest. The best of `runs` runs
/// of each.
struct HostPeersBenchmark {
    let hostBin: URL
    let pairs: Int
    let items: Int
    var runs = 3

    /// One peer: how it runs a program (nil: not installed).
    struct Peer {
        let name: String
        let command: (_ program: String, _ scratch: String) -> [String]?
    }

    static func peers() -> [Peer] {
        func which(_ tool: String) -> String? {
            ["/usr/bin/", "/usr/local/bin/"].map { $0 + tool }.first { FileManager.default.isExecutableFile(atPath: $0) }
        }
        return [
            Peer(name: "native") { program, _ in [program] },
            Peer(name: "LeakSanitizer") { program, _ in
                // The -fsanitize=leak build beside the plain one (NAME-lsan for NAME-dynamic).
                let build = program.hasSuffix("-dynamic") ? String(program.dropLast("-dynamic".count)) + "-lsan" : program + "-lsan"
                return FileManager.default.isExecutableFile(atPath: build) ? [build] : nil
            },
            Peer(name: "heaptrack") { program, scratch in
                which("heaptrack").map { [$0, "-o", scratch + "/heaptrack", program] }
            },
            Peer(name: "valgrind") { program, _ in
                which("valgrind").map { [$0, "--leak-check=full", "--quiet", program] }
            },
        ]
    }

    func run() {
        say("")
        say("host peers (the same programs built for the host; ratio to native and extra time per allocation; best of \(runs) runs):")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lv-bench-peers-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for (name, argument, allocations) in [("lv-bench-malloc", pairs, pairs), ("lv-bench-realistic", items, 23 * items)] {
            let program = hostBin.appendingPathComponent("\(name)-dynamic").path
            var native: Double?
            var parts: [String] = []
            for peer in Self.peers() {
                guard let command = peer.command(program, scratch) else { parts.append("\(peer.name) not installed"); continue }
                let times = (0..<runs).compactMap { _ in Self.elapsedNanoseconds(command + [String(argument)], program: name) }
                guard let best = times.min() else { parts.append("\(peer.name): no result line"); continue }
                if peer.name == "native" {
                    native = best
                    parts.append(String(format: "native %.2f ms", best / 1e6))
                } else if let native {
                    parts.append(String(format: "%@ %.1fx (%.2f us per allocation)", peer.name, best / native,
                                        (best - native) / Double(allocations) / 1000))
                }
            }
            say("  \(name) \(argument): " + parts.joined(separator: "; "))
        }
    }

    /// The `elapsed_ns` of the program's result line, running `command`; nil if it gives none.
    static func elapsedNanoseconds(_ command: [String], program: String) -> Double? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return TrackingBenchResults(parsing: text).elapsed[program]?.first.map(Double.init)
    }
}
