import AllocationLedger
import X86

/// An allocator call whose result the monitor waits for: its return address on the guest's stack
/// was replaced by the return trampoline.
struct PendingCall: Sendable, Equatable, Codable {
    var function: AllocatorFunction
    var size: UInt64
    var oldPointer: UInt64
    /// posix_memalign's `memptr`.
    var resultPointer: UInt64
    var returnAddress: UInt64
    var stack: [UInt64]
    var thread: Int32
    var time: UInt64
    /// The thread that made the call: only it can return from it.
    var owner: ThreadKey
    /// True for a call known only from the journal of calls in flight (a recovery,
    /// `CallTracker.adopt`): only its return is known, so its return records nothing.
    var journaledOnly: Bool? = nil
    /// True for a call the exitless path recorded (`CallTracker.enteredFromRing`): its slot keeps
    /// the real return address, its result comes in a ring record.
    var exitless: Bool? = nil
}

/// Which guest thread trapped: address space (page-table root), thread pointer (FS base, which
/// the thread can set to anything) and the kernel's `current` task (which it cannot; 0 when it
/// could not be read).
struct ThreadKey: Hashable, Sendable, Codable {
    let root: PageTableRoot
    let fsBase: UInt64
    var task: UInt64 = 0
}

/// A stack slot in an address space: where a replaced return address lives.
struct StackSlot: Hashable, Sendable, Codable {
    let root: PageTableRoot
    let address: UInt64
}
