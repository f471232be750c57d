import Foundation
import LeakAnalysis
import LeakJournal
import Synchronization

/// A tracking session's journal: one sample per report it is given. A write error is said once
/// and never stops tracking; later samples are still tried (a full disk may clear).
public final class JournalRecording: Sendable {
    public let writer: JournalWriter
    let say: @Sendable (String) -> Void
    private let state = Mutex(State())

    struct State {
        var closed = false
        var failed = false
        var written = 0
        var seconds = 0.0
        var slowest = 0.0
        /// What the latest sample said, for `unlessUnchanged`.
        var latest: Digest?
    }

    /// A report's totals and its processes' states: what an exit can change.
    struct Digest: Equatable {
        var summary: LeakReport.Summary
        var processes: [String]

        init(_ report: LeakReport) {
            summary = report.summary
            processes = report.processes.map { "\($0.pid ?? -1) \($0.state.rawValue) \($0.outstandingBytes)" }
        }
    }

    /// Opens (creates) the journal at `path`; nil, having said why, when it cannot.
    public static func open(path: String, identity: RunIdentity, say: @escaping @Sendable (String) -> Void) -> JournalRecording? {
        do {
            let recording = JournalRecording(writer: try JournalWriter(creating: path, identity: identity), say: say)
            say("journal: \(path)")
            return recording
        } catch {
            say("cannot open the journal: \(error); tracking goes on without one")
            return nil
        }
    }

    init(writer: JournalWriter, say: @escaping @Sendable (String) -> Void) {
        self.writer = writer
        self.say = say
    }

    /// Writes a sample; with `unlessUnchanged`, not when its totals and processes are those of
    /// the latest sample (an exit of a process the report leaves out, such as busybox's).
    public func record(_ report: LeakReport, reason: String, final: Bool = false, unlessUnchanged: Bool = false) {
        let digest = Digest(report)
        let unchanged = state.withLock { s in defer { s.latest = digest }; return s.latest == digest }
        if unlessUnchanged && unchanged { return }
        let started = Date()
        do {
            try writer.record(report, reason: reason, final: final)
            let took = Date().timeIntervalSince(started)
            state.withLock { $0.written += 1; $0.seconds += took; $0.slowest = max($0.slowest, took) }
        } catch {
            let first = state.withLock { s in defer { s.failed = true }; return !s.failed }
            if first { say("cannot write to the journal \(writer.path): \(error); tracking goes on (said once)") }
        }
    }

    /// Closes the journal after its last sample (a failure is said; the samples are in the WAL).
    public func close() {
        state.withLock { $0.closed = true }
        do {
            try writer.close()
        } catch {
            say("the journal \(writer.path) could not be closed cleanly: \(error); its samples are in its -wal file")
        }
    }

    /// Samples written so far.
    public var samplesWritten: Int { state.withLock { $0.written } }

    /// Whether `close()` was called (the session writes no sample after it).
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// "journal: N sample(s) written ..." with the file's size and the time per sample.
    public func summary() -> String {
        let s = state.withLock { $0 }
        let size = (try? FileManager.default.attributesOfItem(atPath: writer.path)[.size] as? UInt64) ?? 0
        let wal = (try? FileManager.default.attributesOfItem(atPath: writer.path + "-wal")[.size] as? UInt64) ?? 0
        let mean = s.written > 0 ? s.seconds / Double(s.written) : 0
        return "journal: \(s.written) sample(s) written, \((size + wal) / 1024) KiB on disk, "
            + String(format: "%.1f ms per sample (slowest %.1f ms)", mean * 1000, s.slowest * 1000) + ": \(writer.path)"
    }
}
