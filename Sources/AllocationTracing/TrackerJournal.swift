/// The return addresses the monitor replaced with the trampoline for the allocator calls in
/// flight: all a recovery needs to undo them (detach writes each back where its slot still holds
/// the trampoline), kept by a crash-safe journal between two full saves of `TrackerState`.
public struct CallsInFlight: Sendable, Equatable {
    /// One replaced return address: the address space (its page-table root), the stack slot, the
    /// word the slot held, and the thread that made the call (FS base and kernel task), which alone
    /// may return through it (a recovery lets a thread stopped at that return go home).
    public struct Return: Sendable, Equatable {
        public var root: UInt64
        public var slot: UInt64
        public var returnAddress: UInt64
        public var fsBase: UInt64
        public var task: UInt64

        public init(root: UInt64, slot: UInt64, returnAddress: UInt64, fsBase: UInt64, task: UInt64) {
            (self.root, self.slot, self.returnAddress, self.fsBase, self.task) = (root, slot, returnAddress, fsBase, task)
        }
    }

    public var returns: [Return]

    public init(returns: [Return]) { self.returns = returns }

    init(_ pending: [StackSlot: PendingCall]) {
        // A call of the exitless path has no trampoline in its slot: nothing to put back.
        returns = pending.filter { $0.value.exitless != true }.map {
            Return(root: $0.key.root.tableAddress.rawValue, slot: $0.key.address, returnAddress: $0.value.returnAddress,
                   fsBase: $0.value.owner.fsBase, task: $0.value.owner.task)
        }
    }
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

    /// Takes in the journaled calls (after `restore`, before `disarm`): the journal is newer than
    /// the restored state for every slot it names. Detach then puts their return addresses back
    /// where the slots still hold the trampoline.
    public func adopt(_ journaled: CallsInFlight) {
        calls.withLock { $0.adopt(journaled.returns) }
    }
}
