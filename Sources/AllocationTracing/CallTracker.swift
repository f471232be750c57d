import AllocationLedger
import Reachability
import X86

/// The rules of allocator calls, pure: which entries are the outermost call of a thread (nesting,
/// tail calls, forwarded releases, calls left by `longjmp`), which calls wait for their return,
/// and which faults at the return trampoline are their returns and what those record
/// (`TrampolineReturn`). The trap adapter reads and writes the guest and the ledger; this value
/// only decides. One per tracker, behind one lock.
struct CallTracker: Sendable, Codable {
    /// The return trampoline: the last page below the top of the x86-64 user address space, which
    /// Linux never maps (TASK_SIZE ends before it, at `UserSpace.end`), so a return there always faults.
    static let trampoline = UserSpace.end

    /// The calls in flight by return slot: found again when the trampoline faults with rsp just past it.
    private(set) var pending: [StackSlot: PendingCall] = [:]
    /// Per thread, the return slot of its outermost call in flight.
    private(set) var outermost: [ThreadKey: UInt64] = [:]
    /// Per thread, its last release, so a release handed on to another entry point counts once.
    private var lastRelease: [ThreadKey: ReleaseCall] = [:]

    /// A release entry: which block, from which frame, at which breakpoint.
    private struct ReleaseCall: Sendable, Equatable, Codable {
        var pointer: UInt64
        var rsp: UInt64
        var returnAddress: UInt64
        var site: UInt64
    }

    init() {}

    /// The return slot of `thread`'s outermost call in flight, whose word the adapter reads (with
    /// the thread's rights) for `enter`.
    func outermostSlot(of thread: ThreadKey) -> UInt64? { outermost[thread] }

    /// Decides an allocator entry. `outerSlotWord` is the word now in the slot of the thread's
    /// outermost call (`outermostSlot(of:)`; nil when there is none or it is unreadable): that call
    /// is in flight only while its slot holds the trampoline. A thread that left it (`longjmp`, a
    /// signal handler) and called again there has overwritten it, and the call is forgotten.
    mutating func enter(_ entry: CallEntry, outerSlotWord: UInt64?) -> EntryDecision {
        // Tail-called by a tracked call: its return address is already the trampoline.
        if entry.returnAddress == Self.trampoline { return .nested }
        if isNested(entry.thread, rsp: entry.rsp) {
            // An exitless call leaves its slot as it was: it is in flight until its exit record.
            if outerSlotWord == Self.trampoline || outermostIsExitless(entry.thread) { return .nested }
            forgetOutermost(entry.thread)
        }
        if entry.function.releases {
            let pointer = entry.arguments.oldPointer
            let release = ReleaseCall(pointer: pointer, rsp: entry.rsp, returnAddress: entry.returnAddress, site: entry.site)
            return isForwarded(release, thread: entry.thread) ? .forwardedRelease : .release(address: pointer)
        }
        return .redirect(slot: entry.rsp)
    }

    /// The trampoline is in the return slot of `entry` (after `.redirect`): the call is in flight
    /// and the thread's outermost.
    mutating func redirected(_ entry: CallEntry, context: CallContext) {
        let call = PendingCall(function: entry.function, size: entry.arguments.size, oldPointer: entry.arguments.oldPointer,
                               resultPointer: entry.arguments.resultPointer, returnAddress: entry.returnAddress,
                               stack: context.stack, thread: context.thread, time: context.time, owner: entry.thread)
        pending[StackSlot(root: entry.thread.root, address: entry.rsp)] = call
        outermost[entry.thread] = entry.rsp
        lastRelease[entry.thread] = nil
    }

    /// Calls in flight the tracker keeps at most: ring records are written by the process and
    /// cost it no trap, so one could make up entries without end (a new thread pointer each).
    static let maximumCallsInFlight = 65_536

    /// An allocation the exitless path recorded the entry of, decided `.redirect`: in flight until
    /// its exit record (`completedFromRing`). False (nothing kept) when `maximumCallsInFlight` are.
    mutating func enteredFromRing(_ entry: CallEntry, context: CallContext) -> Bool {
        guard pending.count < Self.maximumCallsInFlight else { return false }
        redirected(entry, context: context)
        pending[StackSlot(root: entry.thread.root, address: entry.rsp)]?.exitless = true
        return true
    }

    /// An exitless allocation's exit record: the call in flight at that slot, if it is this
    /// thread's and exitless, ends with `result` (rax). Nil when there is none (the entry was
    /// nested, or the call was forgotten). The ledger effects are `TrampolineReturn`'s rules.
    mutating func completedFromRing(thread: ThreadKey, rsp: UInt64, result: UInt64) -> CallCompletion? {
        let slot = StackSlot(root: thread.root, address: rsp)
        guard let call = pending[slot], call.exitless == true, call.owner.fsBase == thread.fsBase else { return nil }
        pending[slot] = nil
        if outermost[call.owner] == rsp { outermost[call.owner] = nil }
        switch TrampolineReturn.effects(of: call, result: result, storedPointer: { _ in nil }) {
        case .success(let effects): return CallCompletion(call: call, effects: effects)
        case .failure: return CallCompletion(call: call, effects: [])
        }
    }

    /// The exitless calls in flight (detach waits for them to return).
    var exitlessCalls: [StackSlot] { pending.filter { $0.value.exitless == true }.map(\.key) }

    /// Whether `thread`'s outermost call in flight is an exitless one.
    private func outermostIsExitless(_ thread: ThreadKey) -> Bool {
        guard let slot = outermost[thread] else { return false }
        return pending[StackSlot(root: thread.root, address: slot)]?.exitless == true
    }

    /// Undoes `redirected(entry, ...)` when the trampoline could not be written after all.
    mutating func withdraw(_ entry: CallEntry) {
        pending[StackSlot(root: entry.thread.root, address: entry.rsp)] = nil
        if outermost[entry.thread] == entry.rsp { outermost[entry.thread] = nil }
    }

    /// Takes in the calls a journal kept (`CallsInFlight`), restored from an older full save: the
    /// journal is rewritten at every redirect, so for each slot it names it is the newer word (a
    /// slot the older save knows with another return address or thread was reused since). A call
    /// known only from the journal is `journaledOnly`: `drain` hands it to detach (which puts back
    /// a return address only where the slot still holds the trampoline), and its owner's return
    /// through the trampoline is taken (a thread stopped there during a recovery goes home).
    mutating func adopt(_ journaled: [CallsInFlight.Return]) {
        for entry in journaled {
            let root = PageTableRoot(cr3: entry.root)
            let slot = StackSlot(root: root, address: entry.slot)
            let owner = ThreadKey(root: root, fsBase: entry.fsBase, task: entry.task)
            if let known = pending[slot], known.returnAddress == entry.returnAddress, known.owner == owner { continue }
            pending[slot] = PendingCall(function: .malloc, size: 0, oldPointer: 0, resultPointer: 0, returnAddress: entry.returnAddress,
                                        stack: [], thread: 0, time: 0, owner: owner, journaledOnly: true)
        }
    }

    /// Decides a fault at the return trampoline (`TrampolineReturn.decide`): `slotWord` is the word
    /// at rsp - 8 read with the thread's rights (nil: unreadable), `storedPointer` reads
    /// posix_memalign's `*memptr` likewise. An accepted return ends the call; a rejected one
    /// leaves everything as it was.
    mutating func complete(_ fault: TrampolineFault, slotWord: UInt64?,
                           storedPointer: (UInt64) -> UInt64?) -> Result<CallCompletion, TrampolineRejection> {
        let slot = StackSlot(root: fault.thread.root, address: fault.rsp &- 8)
        let call = pending[slot]
        switch TrampolineReturn.decide(fault, call: call, slotWord: slotWord, storedPointer: storedPointer) {
        case .failure(let rejection):
            return .failure(rejection)
        case .success(let effects):
            guard let call else { return .failure(.noPendingCall) }
            pending[slot] = nil
            if outermost[fault.thread] == slot.address { outermost[fault.thread] = nil }
            return .success(CallCompletion(call: call, effects: effects))
        }
    }

    /// Forgets an address space torn down (exit or exec).
    mutating func forget(root: PageTableRoot) {
        pending = pending.filter { $0.key.root != root }
        outermost = outermost.filter { $0.key.root != root }
        lastRelease = lastRelease.filter { $0.key.root != root }
    }

    /// Every call in flight, forgotten (detach puts their return addresses back).
    mutating func drain() -> [StackSlot: PendingCall] {
        defer { self = CallTracker() }
        return pending
    }

    /// True when `thread` is inside an allocator call that started at a stack slot at or above
    /// `rsp` (the same slot when the outer function tail-called this one). A slot below `rsp`
    /// means that call never returned through the trampoline (`longjmp`, thread killed): dropped.
    private mutating func isNested(_ thread: ThreadKey, rsp: UInt64) -> Bool {
        guard let slot = outermost[thread] else { return false }
        if slot >= rsp, pending[StackSlot(root: thread.root, address: slot)] != nil { return true }
        forgetOutermost(thread)
        return false
    }

    /// Drops the thread's outermost call: it is no longer in flight.
    private mutating func forgetOutermost(_ thread: ThreadKey) {
        guard let slot = outermost.removeValue(forKey: thread) else { return }
        pending[StackSlot(root: thread.root, address: slot)] = nil
    }

    /// True when `release` is the previous release of this thread handed on: the same block, from
    /// a deeper frame (a call) or the same frame and return address (a tail call), at another
    /// entry point. Remembers `release` either way.
    private mutating func isForwarded(_ release: ReleaseCall, thread: ThreadKey) -> Bool {
        defer { lastRelease[thread] = release }
        guard let last = lastRelease[thread], last.pointer == release.pointer, release.pointer != 0,
              last.site != release.site else { return false }
        return release.rsp < last.rsp || (release.rsp == last.rsp && release.returnAddress == last.returnAddress)
    }
}
