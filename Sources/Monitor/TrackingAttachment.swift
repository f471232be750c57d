import Control
import Foundation
import Synchronization

/// The tracking session of a running guest, whether made at its start (`run --track`) or by
/// `leakvisor attach` later: the control socket, signals and the final report all ask it here.
public final class TrackingAttachment: Sendable {
    /// Makes a new session for `attach` (loads the guest kernel's symbols and BTF: seconds) from the
    /// request's `track` and the absolute path of the final JSON report.
    public typealias SessionMaker = @Sendable (_ track: AttachTrack, _ reportPath: String?) throws -> TrackingSession

    private let session: Mutex<TrackingSession?>
    /// One attach at a time (a second waits, then finds the first's session).
    private let attaching = Mutex(())
    private let makeSession: SessionMaker

    public init(session: TrackingSession?, makeSession: @escaping SessionMaker) {
        self.session = Mutex(session)
        self.makeSession = makeSession
    }

    /// The session now (nil until a `--track` run made one or an attach did).
    public var current: TrackingSession? { session.withLock { $0 } }

    /// Why an attach request was refused before arming.
    public enum RequestError: Error, CustomStringConvertible {
        case unknownTrack(String)
        case relativeReportPath(String)
        case reportPathFixed(String?)
        public var description: String {
            switch self {
            case .unknownTrack(let t): return "--track \(t): attach tracks \(AttachTrack.choices)"
            case .relativeReportPath(let p): return "--report \(p): the path must be absolute"
            case .reportPathFixed(let p): return "the final report goes to \(p ?? "no file") as set when tracking started; --report cannot change it"
            }
        }
    }

    /// Arms tracking: a new session on the first attach, the existing one (after detach) again.
    public func attach(track: String, reportPath: String?) throws -> AttachSummary {
        guard let track = AttachTrack(rawValue: track) else { throw RequestError.unknownTrack(track) }
        if let reportPath, !reportPath.hasPrefix("/") { throw RequestError.relativeReportPath(reportPath) }
        return try attaching.withLock { _ in
            if let existing = current {
                existing.tracker.setIncludesOperators(track.includesOperators)
                if let reportPath, reportPath != existing.options.jsonPath { throw RequestError.reportPathFixed(existing.options.jsonPath) }
                return try existing.attach(reattached: true)
            }
            let started = ContinuousClock.now
            let made = try makeSession(track, reportPath)
            let summary = try made.attach(kernelSeconds: (ContinuousClock.now - started) / .seconds(1), reattached: false)
            session.withLock { $0 = made }
            return summary
        }
    }
}
