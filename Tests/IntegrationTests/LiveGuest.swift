import Foundation
import Synchronization

/// A `leakvisor run --interactive` in progress: its console output as it arrives, a way to type
/// into the guest, and its end. For tests that ask the monitor questions while the guest runs.
final class LiveGuest: Sendable {
    private let process: Process
    private let input: FileHandle
    private let output = LockedBuffer()
    private let errors = LockedBuffer()
    private let readers = DispatchGroup()
    private let slot: GuestSlots.Slot
    private let arguments: [String]
    /// When it got its guest slot.
    private let started: Date

    var pid: Int32 { process.processIdentifier }
    var console: String { output.text }
    /// What the monitor has said so far (its stderr).
    var monitorOutput: String { errors.text }

    /// `long`: minutes of guest time (it gets the next free guest slot before short runs).
    init(_ arguments: [String], long: Bool = false) throws {
        guard let exe = LeakVisorProcess.executable else { throw CocoaError(.fileNoSuchFile) }
        slot = GuestSlots.take(if: arguments.first == "run", long: long)
        started = Date()
        self.arguments = arguments
        process = Process()
        process.executableURL = exe
        process.arguments = arguments
        process.currentDirectoryURL = LeakVisorProcess.packageRoot
        let out = Pipe(), err = Pipe(), inPipe = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = inPipe
        input = inPipe.fileHandleForWriting
        try process.run()
        for (pipe, sink) in [(out, output), (err, errors)] {
            readers.enter()
            let group = readers
            DispatchQueue.global().async {
                let handle = pipe.fileHandleForReading
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    sink.append(chunk)
                }
                group.leave()
            }
        }
    }

    /// Waits until the console shows `marker`; false on timeout or if the monitor ended first.
    func waitFor(_ marker: String, timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if console.contains(marker) { return true }
            if !process.isRunning { return console.contains(marker) }
            usleep(200_000)
        }
        return false
    }

    func type(_ text: String) { input.write(Data(text.utf8)) }

    /// Sends `signal` to the monitor.
    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the monitor to end (killing it after `timeout`) and returns what it printed.
    func finish(timeout: Double) -> LeakVisorProcess.Result {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while process.isRunning && Date() < deadline { usleep(200_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        slot.give()
        readers.wait()
        LeakVisorProcess.noteSnapshotLines(arguments, errors.text, seconds: Date().timeIntervalSince(started))
        return LeakVisorProcess.Result(status: process.terminationStatus, stdout: console,
                                       stderr: errors.text)
    }

    deinit {
        if process.isRunning { process.terminate() }
        slot.give()
    }
}

/// Bytes appended by a reader thread and read by the test.
final class LockedBuffer: Sendable {
    private let data = Mutex(Data())
    func append(_ chunk: Data) { data.withLock { $0.append(chunk) } }
    var text: String { data.withLock { String(decoding: $0, as: UTF8.self) } }
}
