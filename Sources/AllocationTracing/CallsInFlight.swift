/// The allocator calls in flight, each with the return slot the monitor pointed at the trampoline
/// and the return address it replaced: what a crash-safe journal keeps so that a monitor killed
/// between two full saves of `TrackerState` can still be undone (`UserAllocationTracker.adopt`).
public struct CallsInFlight: Sendable, Codable, Equatable {
    var pending: [StackSlot: PendingCall]

    public var count: Int { pending.count }
}

extension UserAllocationTracker {
    /// `body` is called with every call in flight before the monitor writes the trampoline into a
    /// new return slot, on the trapping vCPU's thread (write-ahead): keeping the latest value on
    /// disk lets a monitor killed at any point be recovered. Nil stops it.
    public func setCallJournal(_ body: (@Sendable (CallsInFlight) -> Void)?) {
        callJournal.withLock { $0 = body }
    }

    /// Takes in journaled calls the restored state does not hold (after `restore`, before
    /// `disarm`): detach then puts their return addresses back where the slots still hold the
    /// trampoline.
    public func adopt(_ journaled: CallsInFlight) {
        calls.withLock { $0.adopt(journaled.pending) }
    }
}
