import AllocationLedger
import AllocationTracing
import Foundation
import LeakAnalysis

/// The tracking part of a snapshot of a tracked guest: the tracker's state (breakpoints, calls in
/// flight), the ledger, the scanner's write history and the tracker's clock, saved while the guest
/// is paused, so a restored guest goes on being tracked from the same point, as often as restored.
public struct TrackingSnapshot: Sendable, Codable {
    public static let formatVersion = 1
    public var formatVersion = Self.formatVersion
    /// The tracker's clock when saved: a restored session's clock goes on from it.
    public var elapsedNanoseconds: UInt64
    public var tracker: TrackerState
    public var ledger: LedgerState
    public var scanner: ScannerState

    /// JSON (the monitor section of the snapshot file is checksummed by the file).
    public func encoded() throws -> Data { try JSONEncoder().encode(self) }

    /// Reads a saved tracking state; a damaged or foreign one is refused with the reason.
    public static func decode(_ data: Data) throws(TrackingSnapshotError) -> TrackingSnapshot {
        let saved: TrackingSnapshot
        do { saved = try JSONDecoder().decode(TrackingSnapshot.self, from: data) } catch {
            throw .unreadable("\(error)")
        }
        guard saved.formatVersion == formatVersion else {
            throw .unreadable("tracking state format \(saved.formatVersion); this monitor reads \(formatVersion)")
        }
        return saved
    }
}

/// Why a snapshot's tracking state cannot be continued.
public enum TrackingSnapshotError: Error, CustomStringConvertible {
    case unreadable(String)
    case ledger(LedgerStateError)

    public var description: String {
        switch self {
        case .unreadable(let why): return "the snapshot's tracking state is unreadable: \(why)"
        case .ledger(let error): return "the snapshot's tracking state is inconsistent: \(error)"
        }
    }
}

extension TrackingSession {
    /// Runs `body` with no scan in progress or starting (a snapshot is saved inside).
    public func holdingScans<T>(_ body: () throws -> T) rethrows -> T {
        try scanning.withLock { _ in try body() }
    }

    /// The session's tracking state, or nil when tracking never armed. Call with the guest paused
    /// and inside `holdingScans`.
    public func savedState() -> TrackingSnapshot? {
        guard let tracker = tracker.savedState() else { return nil }
        return TrackingSnapshot(elapsedNanoseconds: tracking.clock.now, tracker: tracker, ledger: tracking.ledger.savedState(),
                                scanner: scanner.savedState())
    }
}

extension UserTracking {
    /// Puts a saved state into freshly made tracking (made with `TrackerClock(continuingFrom:)`),
    /// before the restored guest runs.
    func restore(_ saved: TrackingSnapshot) throws(TrackingSnapshotError) {
        do { try ledger.restore(saved.ledger) } catch { throw .ledger(error) }
        tracker.restore(saved.tracker)
        scanner.restore(saved.scanner)
    }
}
