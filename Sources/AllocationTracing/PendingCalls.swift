import X86
import AllocationLedger
import GuestInterface

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
    /// The thread that made the call: only it can return from it.
    var owner: ThreadKey
}

/// Which guest thread trapped: address space (page-table root), thread pointer (FS base, which
/// the thread can set to anything) and the kernel's `current` task (which it cannot; 0 when it
/// could not be read).
struct ThreadKey: Hashable, Sendable {
    let root: PageTableRoot
    let fsBase: UInt64
    var task: UInt64 = 0
}

/// A stack slot in an address space: where a replaced return address lives.
struct StackSlot: Hashable, Sendable {
    let root: PageTableRoot
    let address: UInt64
}

/// The calls in flight: by stack slot (found again when the trampoline faults with rsp just past
/// the slot), and per thread the slot of its outermost call, so nested allocator calls (new →
/// malloc, realloc(NULL) → malloc) are counted once.
struct PendingCalls: Sendable {
    var bySlot: [StackSlot: PendingCall] = [:]
    var outermost: [ThreadKey: UInt64] = [:]
    /// Per thread, the last release, so a release forwarded to another entry point (`delete` →
    /// `free`, sized → unsized `delete`) is not counted twice.
    var lastRelease: [ThreadKey: ReleaseCall] = [:]

    /// A release entry: which block, from which frame, at which breakpoint.
    struct ReleaseCall: Sendable, Equatable {
        var pointer: UInt64
        var rsp: UInt64
        var returnAddress: UInt64
        var site: UInt64
    }

    /// True when `thread` is inside an allocator call that started at a stack slot at or above
    /// `rsp` (the same slot when the outer function tail-called this one).
    mutating func isNested(_ thread: ThreadKey, rsp: UInt64) -> Bool {
        guard let slot = outermost[thread] else { return false }
        if slot >= rsp, bySlot[StackSlot(root: thread.root, address: slot)] != nil { return true }
        // Stale: that call never returned through the trampoline (longjmp, thread killed).
        outermost[thread] = nil
        bySlot[StackSlot(root: thread.root, address: slot)] = nil
        return false
    }

    /// Drops the thread's outermost call: it is no longer in flight (the thread left it by
    /// `longjmp` or from a signal handler, so its return slot no longer holds the trampoline).
    mutating func forgetOutermost(_ thread: ThreadKey) {
        guard let slot = outermost.removeValue(forKey: thread) else { return }
        bySlot[StackSlot(root: thread.root, address: slot)] = nil
    }

    /// True when `release` is the previous release of this thread handed on: the same block, from
    /// a deeper frame (a call) or the same frame and return address (a tail call), at another
    /// entry point. Remembers `release` either way.
    mutating func isForwarded(_ release: ReleaseCall, thread: ThreadKey) -> Bool {
        defer { lastRelease[thread] = release }
        guard let last = lastRelease[thread], last.pointer == release.pointer, release.pointer != 0,
              last.site != release.site else { return false }
        return release.rsp < last.rsp || (release.rsp == last.rsp && release.returnAddress == last.returnAddress)
    }

    mutating func forget(root: PageTableRoot) {
        bySlot = bySlot.filter { $0.key.root != root }
        outermost = outermost.filter { $0.key.root != root }
        lastRelease = lastRelease.filter { $0.key.root != root }
    }
}
