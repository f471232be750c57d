import AllocationLedger
import X86

/// What the user-space tracker keeps beside the ledger, as a value: the bytes it changed in the
/// guest (breakpoints, kernel hooks, page copies), the calls in flight whose return addresses it
/// replaced, and what it knows per address space. A snapshot of a tracked guest saves it, so the
/// restored guest's traps are understood and `detach` can still put every byte back.
public struct TrackerState: Sendable, Codable {
    /// How arming stood: armed, or stopped by `detach`.
    public enum Arming: Sendable, Codable, Equatable {
        case armed(ArmingSummary)
        case disarmed
    }

    public var arming: Arming
    var breakpoints: BreakpointTable
    var calls: CallTracker
    var spaces: TrackedSpaces
    var identified: [PageTableRoot: SpaceInfo]
    var counters: TrackerCounters
    var notes: [String]
    public internal(set) var includesOperators: Bool

    /// Address spaces with allocator calls in flight (tests, and the restore's line).
    public var callsInFlight: Int { calls.pending.count }
    public var breakpointCount: Int { breakpoints.sites.count }
}

extension UserAllocationTracker {
    /// The tracker's state, or nil when there is none worth saving (not armed yet, or arming
    /// failed). Call with the guest paused and no trap being handled, so that it matches the
    /// guest's memory.
    public func savedState() -> TrackerState? {
        let arming: TrackerState.Arming
        switch armingOutcome {
        case .success(let summary)?: arming = .armed(summary)
        case .failure(TrackerError.disarmed)?: arming = .disarmed
        default: return nil
        }
        return TrackerState(arming: arming, breakpoints: patcher.table.withLock { $0 }, calls: calls.withLock { $0 },
                            spaces: spaces.withLock { $0 }, identified: identifier.spaces.withLock { $0 },
                            counters: statistics, notes: notes.all,
                            includesOperators: patcher.includesOperators.load(ordering: .relaxed))
    }

    /// Continues from a saved state: the guest restored with it has these breakpoints and calls in
    /// flight. Call before the guest runs; the tracker then counts as armed (or detached).
    public func restore(_ saved: TrackerState) {
        patcher.table.withLock { $0 = saved.breakpoints }
        patcher.setIncludesOperators(saved.includesOperators)
        calls.withLock { $0 = saved.calls }
        spaces.withLock { $0 = saved.spaces }
        identifier.spaces.withLock { $0 = saved.identified }
        counters.withLock { $0 = saved.counters }
        notes.replace(with: saved.notes)
        switch saved.arming {
        case .armed(let summary):
            arming.withLock { $0.outcome = .success(summary) }
            trapping.store(true, ordering: .relaxed)
        case .disarmed:
            arming.withLock { $0.outcome = .failure(TrackerError.disarmed) }
            trapping.store(false, ordering: .relaxed)
        }
    }
}
