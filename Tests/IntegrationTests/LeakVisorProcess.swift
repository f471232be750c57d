import Foundation
import Synchronization

/// Runs the built `leakvisor` executable and captures its output and exit status.
struct LeakVisorProcess {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    static var executable: URL? {
        for config in ["debug", "release"] {
            let url = packageRoot.appendingPathComponent(".build/\(config)/leakvisor")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return nil
    }

    static var imageDirectory: URL { packageRoot.appendingPathComponent("guest-images/build/default") }
    static var imageBuilt: Bool {
        FileManager.default.fileExists(atPath: imageDirectory.appendingPathComponent("vmlinux").path)
            && FileManager.default.fileExists(atPath: imageDirectory.appendingPathComponent("initramfs.cpio").path)
    }

    /// Runs `leakvisor` on a pseudo-terminal (util-linux `script`), as a user at a terminal would:
    /// stdin, stdout and stderr are all the terminal, so `stdout` holds both, as the terminal got
    /// them (escape sequences included); `stderr` is empty.
    static func runOnTerminal(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let slot = GuestSlots.take(if: arguments.first == "run")
        defer { slot.give() }
        let started = Date()
        guard let exe = executable else { throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: ".build/debug/leakvisor"]) }
        func quoted(_ word: String) -> String { "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let settings = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let command = ((settings.isEmpty ? [] : ["env"] + settings) + [exe.path] + arguments).map(quoted).joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["--quiet", "--flush", "--return", "--command", command, "/dev/null"]
        process.currentDirectoryURL = packageRoot
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stdout = String(decoding: outData, as: UTF8.self)
        noteSnapshotLines(arguments, stdout, seconds: Date().timeIntervalSince(started))
        return Result(status: process.terminationStatus, stdout: stdout, stderr: "")
    }

    /// `long`: minutes of guest time (it gets the next free guest slot before short runs).
    static func run(_ arguments: [String], environment: [String: String] = [:], long: Bool = false) throws -> Result {
        let slot = GuestSlots.take(if: arguments.first == "run", long: long)
        defer { slot.give() }
        let started = Date()
        guard let exe = executable else { throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: ".build/debug/leakvisor"]) }
        let process = Process()
        process.executableURL = exe
        process.arguments = arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.currentDirectoryURL = packageRoot
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes concurrently so neither fills up.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        let stderr = String(decoding: errData, as: UTF8.self)
        noteSnapshotLines(arguments, stderr, seconds: Date().timeIntervalSince(started))
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: stderr)
    }

    /// Prints what a run said about snapshots (restored, saved, unusable), so that the suite's
    /// log shows which runs restored and why any did not, and how long it held its guest slot (where
    /// the suite's time goes).
    static func noteSnapshotLines(_ arguments: [String], _ output: String, seconds: Double) {
        guard arguments.first == "run" else { return }
        let lines = output.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .filter { $0.contains("leakvisor: snapshot:") || $0.contains("leakvisor: boot: user space") }
        print(String(format: "[run %.1f s] ", seconds) + arguments.dropFirst().prefix(6).joined(separator: " ") + ": "
              + (lines.isEmpty ? "(no snapshot line)" : lines.joined(separator: " | ")))
    }
}

/// At most two guests at once in the whole suite (the machine has two cores): every `run` takes
/// a slot for its life. Tests run in parallel; the others wait here. A freed slot goes to the
/// longest test waiting (`long`: minutes of guest time), then to the one waiting longest, so that
/// the suite does not end with one long test running alone.
enum GuestSlots {
    private struct Waiter {
        let long: Bool
        let order: Int
        let ready: DispatchSemaphore
    }

    private struct State {
        /// `LEAKVISOR_TEST_GUEST_SLOTS` (1 or 2) lowers it, to run tests beside a benchmark's guest.
        var free = ProcessInfo.processInfo.environment["LEAKVISOR_TEST_GUEST_SLOTS"].flatMap(Int.init).map { min(max($0, 1), 2) } ?? 2
        var waiters: [Waiter] = []
        var arrivals = 0
    }

    private static let state = Mutex(State())

    /// A taken slot (or none, for commands that start no guest), given back once.
    final class Slot: Sendable {
        private let held: Mutex<Bool>
        init(held: Bool) { self.held = Mutex(held) }
        func give() {
            if held.withLock({ let was = $0; $0 = false; return was }) { GuestSlots.release() }
        }
    }

    /// Takes a slot when `starts` (waiting for one); `long` puts the test ahead of short ones.
    static func take(if starts: Bool, long: Bool = false) -> Slot {
        guard starts else { return Slot(held: false) }
        let waiter: Waiter? = state.withLock { s in
            s.arrivals += 1
            if s.free > 0 {
                s.free -= 1
                return nil
            }
            let w = Waiter(long: long, order: s.arrivals, ready: DispatchSemaphore(value: 0))
            s.waiters.append(w)
            return w
        }
        waiter?.ready.wait()
        return Slot(held: true)
    }

    /// Hands a freed slot to the next waiter (long ones first, then in order of arrival), or keeps it free.
    private static func release() {
        let next: Waiter? = state.withLock { s in
            guard let index = s.waiters.indices.min(by: { a, b in
                let (x, y) = (s.waiters[a], s.waiters[b])
                return x.long != y.long ? x.long : x.order < y.order
            }) else {
                s.free += 1
                return nil
            }
            return s.waiters.remove(at: index)
        }
        next?.ready.signal()
    }
}
