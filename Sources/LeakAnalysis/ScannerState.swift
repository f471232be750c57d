import Reachability

/// What the scanner keeps between scans that a report depends on: when each guest frame was last
/// seen written (staleness), its notes, and where the next round starts. The candidate cache is
/// not kept: the first scan after a restore reads everything again.
public struct ScannerState: Sendable, Codable {
    var history: PageWriteHistory
    var notes: [String]
    var nextRoundStart: Int
}

extension ReachabilityScanner {
    public func savedState() -> ScannerState {
        state.withLock { ScannerState(history: $0.history, notes: $0.notes, nextRoundStart: $0.nextRoundStart) }
    }

    /// Continues from a saved state (before the restored guest runs).
    public func restore(_ saved: ScannerState) {
        state.withLock { s in
            s.history = saved.history
            s.notes = saved.notes
            s.nextRoundStart = min(max(0, saved.nextRoundStart), 1 << 20)
        }
    }
}
