import AllocationTracking

/// An allocator call whose result the monitor waits for: its return address on the guest's stack
/// was replaced by the return trampoline.
struct PendingCall: Sendable {
    var function: AllocatorFunction
    var size: UInt64
    var oldPointer: UInt64
    /// posix_memalign's `memptr`.
    var resultPointer: UInt64
    var returnAddress: UInt64
    var stack: [UInt64]
    var thread: Int32
    var time: UInt64
}

/// Where a guest thread is: address space (page-table root) and thread pointer (FS base).
struct ThreadKey: Hashable, Sendable {
    let root: UInt64
    let fsBase: UInt64
}

/// A stack slot in an address space: where a replaced return address lives.
struct StackSlot: Hashable, Sendable {
    let root: UInt64
    let address: UInt64
}

/// The calls in flight: by stack slot (found again when the trampoline faults with rsp just past
/// the slot), and per thread the slot of its outermost call, so nested allocator calls (new →
/// malloc, realloc(NULL) → malloc) are counted once.
struct PendingCalls: Sendable {
    var bySlot: [StackSlot: PendingCall] = [:]
    var outermost: [ThreadKey: UInt64] = [:]
    /// Per thread, the pointer of the last `delete`, whose nested `free` is not a second release.
    var lastDelete: [ThreadKey: UInt64] = [:]

    /// True when `thread` is inside an allocator call that started at a stack slot above `rsp`.
    mutating func isNested(_ thread: ThreadKey, rsp: UInt64) -> Bool {
        guard let slot = outermost[thread] else { return false }
        if slot > rsp, bySlot[StackSlot(root: thread.root, address: slot)] != nil { return true }
        outermost[thread] = nil          // stale: that call never returned through the trampoline
        return false
    }

    mutating func forget(root: UInt64) {
        bySlot = bySlot.filter { $0.key.root != root }
        outermost = outermost.filter { $0.key.root != root }
        lastDelete = lastDelete.filter { $0.key.root != root }
    }
}
