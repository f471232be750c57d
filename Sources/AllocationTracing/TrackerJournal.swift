/// The allocator calls in flight, each with the return slot the monitor pointed at the trampoline
/// and the return address it replaced: what a crash-safe journal keeps so that a monitor killed
/// between two full saves of `TrackerState` can still be undone (`UserAllocationTracker.adopt`).
public struct CallsInFlight: Sendable, Codable, Equatable {
    var pending: [StackSlot: PendingCall]

    public var count: Int { pending.count }
}

/// Write-ahead hooks for whoever keeps the tracker's state on disk while the guest may outlive
/// the monitor (a libvirt attach): each is called, on the trapping thread, before the monitor
/// writes into the guest something the copy on disk does not show yet.
public struct TrackerJournal: Sendable {
    /// New breakpoints are in `savedState()` and about to be written.
    public var breakpoints: @Sendable () -> Void
    /// A trampoline is about to be written: every call in flight, the new one included.
    public var calls: @Sendable (CallsInFlight) -> Void

    public init(breakpoints: @escaping @Sendable () -> Void, calls: @escaping @Sendable (CallsInFlight) -> Void) {
        self.breakpoints = breakpoints
        self.calls = calls
    }
}

extension UserAllocationTracker {
    /// Keeps `journal` told from now on (nil: no more). Saving the state on disk in
    /// `breakpoints` and the calls in `calls` lets a monitor killed at any point be recovered.
    public func setJournal(_ journal: TrackerJournal?) {
        callJournal.withLock { $0 = journal?.calls }
        patcher.writeAhead.withLock { $0 = journal?.breakpoints }
    }

    /// Takes in journaled calls the restored state does not hold (after `restore`, before
    /// `disarm`): detach then puts their return addresses back where the slots still hold the
    /// trampoline.
    public func adopt(_ journaled: CallsInFlight) {
        calls.withLock { $0.adopt(journaled.pending) }
    }
}
