@testable import AllocationTracing
import X86
import AllocationLedger
import GuestInterface
import LeakAnalysis
import Testing

/// The rules that keep nested and forwarded allocator calls from being counted twice.
struct PendingCallsTests {
    let thread = ThreadKey(root: PageTableRoot(cr3: 0x1000), fsBase: 0x7f00_0000_0000)

    func call(_ function: AllocatorFunction) -> PendingCall {
        PendingCall(function: function, size: 8, oldPointer: 0, resultPointer: 0, returnAddress: 0x401000, stack: [], thread: 1, time: 0, owner: thread)
    }

    @Test func aCallBelowTheOutermostSlotIsNestedAndTheSameSlotIsATailCall() {
        var calls = PendingCalls()
        calls.bySlot[StackSlot(root: thread.root, address: 0x7ffe_0100)] = call(.operatorNew)
        calls.outermost[thread] = 0x7ffe_0100
        let deeper = calls.isNested(thread, rsp: 0x7ffe_00c0)
        #expect(deeper)      // new → malloc (a call: deeper)
        let sameSlot = calls.isNested(thread, rsp: 0x7ffe_0100)
        #expect(sameSlot)      // realloc(NULL) → jmp malloc (same slot)
        let otherThread = calls.isNested(ThreadKey(root: thread.root, fsBase: 1), rsp: 0x7ffe_00c0)
        #expect(!otherThread)  // another thread
    }

    @Test func aSlotAboveTheOutermostMeansThatCallIsGone() {
        var calls = PendingCalls()
        calls.bySlot[StackSlot(root: thread.root, address: 0x7ffe_0100)] = call(.malloc)
        calls.outermost[thread] = 0x7ffe_0100
        let above = calls.isNested(thread, rsp: 0x7ffe_0200)
        #expect(!above)     // e.g. longjmp out of the call
        #expect(calls.outermost[thread] == nil && calls.bySlot.isEmpty)
    }

    @Test func aReleaseHandedOnCountsOnceButARealDoubleFreeDoesNot() {
        var calls = PendingCalls()
        let delete = PendingCalls.ReleaseCall(pointer: 0x5000, rsp: 0x7ffe_0100, returnAddress: 0x401234, site: 0xA78E0)
        let first = calls.isForwarded(delete, thread: thread)
        #expect(!first)
        // _ZdlPvm tail-calls _ZdlPv: same frame, same return address, another entry point.
        let unsized = PendingCalls.ReleaseCall(pointer: 0x5000, rsp: 0x7ffe_0100, returnAddress: 0x401234, site: 0xA78D0)
        let tailCalled = calls.isForwarded(unsized, thread: thread)
        #expect(tailCalled)
        // _ZdlPv calls free: a deeper frame.
        let free = PendingCalls.ReleaseCall(pointer: 0x5000, rsp: 0x7ffe_00f8, returnAddress: 0xA78D9, site: 0x98EF0)
        let called = calls.isForwarded(free, thread: thread)
        #expect(called)
        // The program frees the same block again from its own code: same entry point → not forwarded.
        let again = PendingCalls.ReleaseCall(pointer: 0x5000, rsp: 0x7ffe_00f8, returnAddress: 0x401300, site: 0x98EF0)
        let programAgain = calls.isForwarded(again, thread: thread)
        #expect(!programAgain)
        // Another block is never forwarded.
        let other = PendingCalls.ReleaseCall(pointer: 0x6000, rsp: 0x7ffe_00f0, returnAddress: 0x401300, site: 0xA78D0)
        let otherBlock = calls.isForwarded(other, thread: thread)
        #expect(!otherBlock)
    }

    @Test func forgettingAnAddressSpaceDropsOnlyItsCalls() {
        var calls = PendingCalls()
        calls.bySlot[StackSlot(root: PageTableRoot(cr3: 0x1000), address: 0x10)] = call(.malloc)
        calls.bySlot[StackSlot(root: PageTableRoot(cr3: 0x2000), address: 0x10)] = call(.malloc)
        calls.outermost[ThreadKey(root: PageTableRoot(cr3: 0x1000), fsBase: 1)] = 0x10
        calls.forget(root: PageTableRoot(cr3: 0x1000))
        #expect(calls.bySlot.keys.map(\.root) == [PageTableRoot(cr3: 0x2000)])
        #expect(calls.outermost.isEmpty)
    }
}

extension PendingCallsTests {
    @Test func forgettingTheOutermostCallOfAThreadLeavesTheOthers() {
        var calls = PendingCalls()
        let other = ThreadKey(root: thread.root, fsBase: thread.fsBase, task: 0xFFFF_8880_0000_1000)
        calls.bySlot[StackSlot(root: thread.root, address: 0x7ffe_0100)] = call(.malloc)
        calls.bySlot[StackSlot(root: thread.root, address: 0x7ffd_0100)] = call(.malloc)
        calls.outermost[thread] = 0x7ffe_0100
        calls.outermost[other] = 0x7ffd_0100
        calls.forgetOutermost(thread)
        #expect(calls.outermost[thread] == nil && calls.bySlot[StackSlot(root: thread.root, address: 0x7ffe_0100)] == nil)
        #expect(calls.outermost[other] == 0x7ffd_0100 && calls.bySlot.count == 1)
        // Same root and FS base, another kernel task: another thread.
        let nested = calls.isNested(other, rsp: 0x7ffd_00c0)
        #expect(nested)
        let notNested = calls.isNested(thread, rsp: 0x7ffe_00c0)
        #expect(!notNested)
    }
}
