@testable import AllocationTracing
import AllocationLedger
import Testing
import X86

/// The rules of allocator calls, without a guest: which entries are recorded, which are part of a
/// call in flight, and what each return records (issue 12: before, these were tested only by
/// booting a guest).
struct CallTrackerTests {
    static let trampoline = CallTracker.trampoline
    /// A stack slot of the program's frame, and the program's return addresses.
    static let slot: UInt64 = 0x7ffe_0000_1000
    static let program: UInt64 = 0x40_1234, programElsewhere: UInt64 = 0x40_1300
    static let block: UInt64 = 0x55_0000_2a0, moved: UInt64 = 0x55_0000_9000

    @Test func newCallingMallocIsRecordedOnceAsNew() throws {
        var process = MiniProcess()
        #expect(try process.call("_Znwm", rdi: 40, rsp: Self.slot, returnAddress: Self.program) == .redirect(slot: Self.slot))
        // operator new calls malloc from a deeper frame; malloc returns to new normally.
        #expect(try process.call("malloc", rdi: 40, rsp: Self.slot - 0x28, returnAddress: 0x7f00_3000_1111) == .nested)
        #expect(process.ret(slot: Self.slot - 0x28, rax: Self.block) == nil)
        let completion = try #require(try process.ret(slot: Self.slot, rax: Self.block)?.get())
        #expect(completion.resumeAt == Self.program)
        #expect(completion.effects == [.allocated(address: Self.block, size: 40)])
        #expect(process.live.count == 1 && process.live[Self.block]?.function == .operatorNew && process.live[Self.block]?.size == 40)
        #expect(process.counters.entries == 1 && process.counters.nestedEntries == 1 && process.counters.returns == 1)
        #expect(process.tracker.pending.isEmpty && process.tracker.outermost.isEmpty)
    }

    @Test func reallocOfNullTailCallingMallocIsOneRealloc() throws {
        var process = MiniProcess()
        #expect(try process.call("realloc", rdi: 0, rsi: 32, rsp: Self.slot, returnAddress: Self.program) == .redirect(slot: Self.slot))
        // `jmp malloc`: the same slot, whose word is already the trampoline.
        #expect(try process.call("malloc", rdi: 32, rsp: Self.slot, returnAddress: nil) == .nested)
        let completion = try #require(try process.ret(slot: Self.slot, rax: Self.block)?.get())
        #expect(completion.call.function == .realloc && completion.effects == [.allocated(address: Self.block, size: 32)])
        #expect(process.live[Self.block]?.function == .realloc && process.live[Self.block]?.size == 32)
        #expect(process.counters.entries == 1 && process.counters.nestedEntries == 1)
    }

    @Test func aTailCallIsNestedEvenWithNoCallInFlight() throws {
        // Whatever the tracker remembers, a return address equal to the trampoline is never recorded.
        var process = MiniProcess()
        process.words[Self.slot] = Self.trampoline
        #expect(try process.call("malloc", rdi: 8, rsp: Self.slot, returnAddress: nil) == .nested)
        #expect(process.tracker.pending.isEmpty && process.counters.entries == 0)
    }

    func processWithBlock(size: UInt64 = 24) throws -> MiniProcess {
        var process = MiniProcess()
        try process.call("malloc", rdi: size, rsp: Self.slot, returnAddress: Self.program)
        _ = process.ret(slot: Self.slot, rax: Self.block)
        #expect(process.live[Self.block]?.size == size)
        return process
    }

    @Test func reallocMovingABlockReleasesTheOldAndRecordsTheNew() throws {
        var process = try processWithBlock()
        try process.call("realloc", rdi: Self.block, rsi: 4096, rsp: Self.slot, returnAddress: Self.programElsewhere)
        let completion = try #require(try process.ret(slot: Self.slot, rax: Self.moved)?.get())
        #expect(completion.effects == [.released(address: Self.block), .allocated(address: Self.moved, size: 4096)])
        #expect(process.live.keys.sorted() == [Self.moved] && process.live[Self.moved]?.function == .realloc)
        #expect(process.findings.isEmpty)
    }

    @Test func reallocInPlaceKeepsTheAddressWithTheNewSize() throws {
        var process = try processWithBlock()
        try process.call("realloc", rdi: Self.block, rsi: 48, rsp: Self.slot, returnAddress: Self.programElsewhere)
        _ = process.ret(slot: Self.slot, rax: Self.block)
        #expect(process.live.keys.sorted() == [Self.block] && process.live[Self.block]?.size == 48)
        #expect(process.findings.isEmpty)
    }

    @Test func reallocToZeroFreesTheBlock() throws {
        var process = try processWithBlock()
        try process.call("realloc", rdi: Self.block, rsi: 0, rsp: Self.slot, returnAddress: Self.programElsewhere)
        let completion = try #require(try process.ret(slot: Self.slot, rax: 0)?.get())
        #expect(completion.effects == [.released(address: Self.block)])
        #expect(process.live.isEmpty && process.findings.isEmpty)
    }

    @Test func aFailedReallocKeepsTheOldBlock() throws {
        var process = try processWithBlock()
        try process.call("realloc", rdi: Self.block, rsi: 1 << 46, rsp: Self.slot, returnAddress: Self.programElsewhere)
        #expect(try #require(try process.ret(slot: Self.slot, rax: 0)?.get()).effects == [])
        // reallocarray overflowing `count × size` fails too (its size is then unknown).
        try process.call("reallocarray", rdi: Self.block, rsi: 1 << 40, rdx: 1 << 40, rsp: Self.slot, returnAddress: Self.programElsewhere)
        #expect(process.tracker.pending.first?.value.size == .max)
        #expect(try #require(try process.ret(slot: Self.slot, rax: 0)?.get()).effects == [])
        // reallocarray(p, 0, 0) returns NULL without freeing (only realloc frees on size 0).
        try process.call("reallocarray", rdi: Self.block, rsi: 0, rdx: 8, rsp: Self.slot, returnAddress: Self.programElsewhere)
        #expect(try #require(try process.ret(slot: Self.slot, rax: 0)?.get()).effects == [])
        #expect(process.live.keys.sorted() == [Self.block] && process.live[Self.block]?.size == 24)
    }

    @Test func posixMemalignRecordsTheBlockStoredThroughItsPointer() throws {
        var process = MiniProcess()
        let memptr: UInt64 = 0x7ffe_0000_2000
        try process.call("posix_memalign", rdi: memptr, rsi: 64, rdx: 100, rsp: Self.slot, returnAddress: Self.program)
        #expect(process.tracker.pending.first?.value.resultPointer == memptr)
        process.words[memptr] = Self.block           // the allocator stores the block, returns 0
        let completion = try #require(try process.ret(slot: Self.slot, rax: 0)?.get())
        #expect(completion.effects == [.allocated(address: Self.block, size: 100)])
        #expect(process.live[Self.block]?.function == .posixMemalign)
        // An error (ENOMEM in eax) stores nothing and records nothing.
        try process.call("posix_memalign", rdi: memptr, rsi: 64, rdx: 100, rsp: Self.slot, returnAddress: Self.program)
        #expect(try #require(try process.ret(slot: Self.slot, rax: 12)?.get()).effects == [])
        // An unreadable or implausible `*memptr` is not a return: passed to the guest, call kept.
        try process.call("posix_memalign", rdi: 0x7ffe_0000_3000, rsi: 64, rdx: 100, rsp: Self.slot, returnAddress: Self.program)
        #expect(process.ret(slot: Self.slot, rax: 0) == .failure(.implausibleStoredPointer))
        #expect(process.tracker.pending.count == 1 && process.live.count == 1)
    }

    @Test func sizesFollowEachFunctionsConvention() throws {
        var process = MiniProcess()
        try process.call("calloc", rdi: 3, rsi: 8, rsp: Self.slot, returnAddress: Self.program)
        #expect(try #require(try process.ret(slot: Self.slot, rax: 0x55_0000_1000)?.get()).effects == [.allocated(address: 0x55_0000_1000, size: 24)])
        try process.call("memalign", rdi: 64, rsi: 100, rsp: Self.slot, returnAddress: Self.program)
        #expect(try #require(try process.ret(slot: Self.slot, rax: 0x55_0000_2000)?.get()).effects == [.allocated(address: 0x55_0000_2000, size: 100)])
        try process.call("aligned_alloc", rdi: 64, rsi: 128, rsp: Self.slot, returnAddress: Self.program)
        #expect(try #require(try process.ret(slot: Self.slot, rax: 0x55_0000_3000)?.get()).effects == [.allocated(address: 0x55_0000_3000, size: 128)])
        try process.call("valloc", rdi: 100, rsp: Self.slot, returnAddress: Self.program)
        #expect(try #require(try process.ret(slot: Self.slot, rax: 0x55_0000_4000)?.get()).effects == [.allocated(address: 0x55_0000_4000, size: 100)])
        // pvalloc rounds up to whole pages (at least one).
        try process.call("pvalloc", rdi: 100, rsp: Self.slot, returnAddress: Self.program)
        #expect(try #require(try process.ret(slot: Self.slot, rax: 0x55_0000_5000)?.get()).effects == [.allocated(address: 0x55_0000_5000, size: 4096)])
        try process.call("pvalloc", rdi: 0, rsp: Self.slot, returnAddress: Self.program)
        #expect(try #require(try process.ret(slot: Self.slot, rax: 0x55_0000_6000)?.get()).effects == [.allocated(address: 0x55_0000_6000, size: 4096)])
        // calloc whose `count × size` overflows has no size: a block returned for it is implausible.
        try process.call("calloc", rdi: 1 << 40, rsi: 1 << 40, rsp: Self.slot, returnAddress: Self.program)
        #expect(process.ret(slot: Self.slot, rax: 0x55_0000_7000) == .failure(.implausibleResult(0x55_0000_7000)))
        #expect(process.counters.trampolineFaultsDeclined == 1 && process.live.count == 6)
    }
}

extension CallTrackerTests {
    @Test func deleteForwardedToFreeIsOneRelease() throws {
        var process = MiniProcess()
        try process.call("_Znwm", rdi: 16, rsp: Self.slot, returnAddress: Self.program)
        _ = process.ret(slot: Self.slot, rax: Self.block)
        // _ZdlPvm tail-calls _ZdlPv (same frame, same return address), which calls free (deeper).
        #expect(try process.call("_ZdlPvm", rdi: Self.block, rsi: 16, rsp: Self.slot, returnAddress: Self.program) == .release(address: Self.block))
        #expect(try process.call("_ZdlPv", rdi: Self.block, rsp: Self.slot, returnAddress: nil) == .forwardedRelease)
        #expect(try process.call("free", rdi: Self.block, rsp: Self.slot - 0x18, returnAddress: 0x7f00_3000_2222) == .forwardedRelease)
        #expect(process.counters.releases == 1 && process.counters.nestedEntries == 2)
        #expect(process.live.isEmpty && process.findings.isEmpty)
        #expect(process.spaceCounters?.releases == 1)
    }

    @Test func aRealDoubleFreeIsNotTakenForAForwardedOne() throws {
        var process = try processWithBlock()
        #expect(try process.call("free", rdi: Self.block, rsp: Self.slot, returnAddress: Self.program) == .release(address: Self.block))
        // The program frees it again from its own code: the same entry point, so not forwarded.
        #expect(try process.call("free", rdi: Self.block, rsp: Self.slot - 8, returnAddress: Self.programElsewhere) == .release(address: Self.block))
        #expect(process.findings.map(\.kind) == [.doubleFree])
        // Another block is never forwarded, from any entry point.
        #expect(try process.call("_ZdlPv", rdi: Self.moved, rsp: Self.slot - 0x10, returnAddress: Self.program) == .release(address: Self.moved))
    }

    @Test func freeOfNullIsAReleaseOfNothing() throws {
        var process = MiniProcess()
        #expect(try process.call("free", rdi: 0, rsp: Self.slot, returnAddress: Self.program) == .release(address: 0))
        // Two NULL releases in a row are two (never "forwarded").
        #expect(try process.call("_ZdlPv", rdi: 0, rsp: Self.slot - 0x18, returnAddress: Self.program) == .release(address: 0))
        #expect(process.counters.releases == 2 && process.findings.isEmpty && process.spaceCounters?.nullReleases == 2)
        #expect(process.tracker.pending.isEmpty)
    }

    @Test func aCallLeftByLongjmpIsForgottenWhenItsSlotIsReused() throws {
        var process = MiniProcess()
        try process.call("malloc", rdi: 8, rsp: Self.slot, returnAddress: Self.program)
        // A signal handler inside malloc longjmps out; the program's frame reuses the slot.
        process.words[Self.slot] = 0x1234
        #expect(try process.call("malloc", rdi: 16, rsp: Self.slot - 0x40, returnAddress: Self.programElsewhere) == .redirect(slot: Self.slot - 0x40))
        #expect(process.tracker.pending.keys.map(\.address) == [Self.slot - 0x40])
        #expect(process.tracker.outermostSlot(of: MiniProcess.main) == Self.slot - 0x40)
        _ = process.ret(slot: Self.slot - 0x40, rax: Self.block)
        #expect(process.live[Self.block]?.size == 16 && process.counters.nestedEntries == 0)
    }

    @Test func aCallLeftByLongjmpToAnOuterFrameIsForgotten() throws {
        var process = MiniProcess()
        try process.call("malloc", rdi: 8, rsp: Self.slot, returnAddress: Self.program)
        // longjmp to a frame above the call: the next call's slot is above the old one.
        #expect(try process.call("malloc", rdi: 16, rsp: Self.slot + 0x100, returnAddress: Self.programElsewhere) == .redirect(slot: Self.slot + 0x100))
        #expect(process.tracker.pending.keys.map(\.address) == [Self.slot + 0x100])
        // A forged `ret` into the old slot finds no call there.
        #expect(process.trampolineFault(rsp: Self.slot + 8, rax: Self.block) == .failure(.noPendingCall))
    }

    @Test func anotherThreadsReturnIsDeclinedAndTheCallStays() throws {
        var process = MiniProcess()
        try process.call("malloc", rdi: 64, rsp: Self.slot, returnAddress: Self.program)
        // Same address space and FS base (user-settable), another kernel task, jumping with the owner's rsp.
        let other = ThreadKey(root: MiniProcess.root, fsBase: MiniProcess.main.fsBase, task: 0xFFFF_8880_0311_8000)
        #expect(process.trampolineFault(rsp: Self.slot + 8, rax: 0x55_dead_0000, thread: other) == .failure(.otherThread))
        #expect(process.counters.trampolineFaultsDeclined == 1 && process.live.isEmpty && process.tracker.pending.count == 1)
        // Its own entries are not nested in the other thread's call.
        #expect(try process.call("malloc", rdi: 8, rsp: Self.slot - 0x40, returnAddress: Self.program, thread: other) == .redirect(slot: Self.slot - 0x40))
        // The owner's real return is still taken.
        #expect(try process.ret(slot: Self.slot, rax: Self.block)?.get().effects == [.allocated(address: Self.block, size: 64)])
        #expect(process.tracker.outermostSlot(of: MiniProcess.main) == nil && process.tracker.outermostSlot(of: other) == Self.slot - 0x40)
    }

    @Test func forgettingAnAddressSpaceDropsOnlyItsCalls() throws {
        var process = MiniProcess()
        let otherSpace = ThreadKey(root: PageTableRoot(cr3: 0x9999_0000), fsBase: 1, task: 2)
        try process.call("malloc", rdi: 8, rsp: Self.slot, returnAddress: Self.program)
        try process.call("malloc", rdi: 8, rsp: Self.slot, returnAddress: Self.program, thread: otherSpace)
        process.tracker.forget(root: MiniProcess.root)
        #expect(process.tracker.pending.keys.map(\.root) == [otherSpace.root])
        #expect(process.tracker.outermost.keys.map(\.root) == [otherSpace.root])
        let drained = process.tracker.drain()
        #expect(drained.count == 1 && drained.first?.value.returnAddress == Self.program)
        #expect(process.tracker.pending.isEmpty && process.tracker.outermost.isEmpty)
    }
    /// The journal of a libvirt attach (`CallsInFlight`) is rewritten at every redirect, so a
    /// recovery takes its word over the full record's for each slot it names: a slot the record
    /// knows with another return address was reused since. Where both name the same call the
    /// record's (whole) call stays. A call known only from the journal is its owner's to return
    /// from (a thread stopped at that return during the recovery goes home, recording nothing);
    /// another thread's fault there is still declined; detach drains what is left.
    @Test func journaledCallsOverrideTheRecordForTheSlotsTheyName() throws {
        let other = ThreadKey(root: PageTableRoot(cr3: 0x9999_0000), fsBase: 1, task: 2)
        var journaled = MiniProcess()
        try journaled.call("malloc", rdi: 8, rsp: Self.slot, returnAddress: Self.program)
        try journaled.call("calloc", rdi: 2, rsi: 8, rsp: Self.slot, returnAddress: Self.programElsewhere, thread: other)
        var recovered = MiniProcess()
        try recovered.call("malloc", rdi: 8, rsp: Self.slot, returnAddress: Self.programElsewhere)
        try recovered.call("calloc", rdi: 2, rsi: 8, rsp: Self.slot, returnAddress: Self.programElsewhere, thread: other)
        recovered.tracker.adopt(CallsInFlight(journaled.tracker.pending).returns)
        let mainSlot = StackSlot(root: MiniProcess.root, address: Self.slot), otherSlot = StackSlot(root: other.root, address: Self.slot)
        #expect(recovered.tracker.pending[mainSlot]?.returnAddress == Self.program && recovered.tracker.pending[mainSlot]?.journaledOnly == true)
        #expect(recovered.tracker.pending[otherSlot]?.size == 16 && recovered.tracker.pending[otherSlot]?.journaledOnly == nil)
        // Only the owner returns through the journaled call; any result (12: posix_memalign's ENOMEM) records nothing.
        let impostor = ThreadKey(root: MiniProcess.root, fsBase: MiniProcess.main.fsBase, task: 0xFFFF_8880_0311_8000)
        #expect(recovered.trampolineFault(rsp: Self.slot + 8, rax: 12, thread: impostor) == .failure(.otherThread))
        let home = try #require(try recovered.ret(slot: Self.slot, rax: 12)?.get())
        #expect(home.effects.isEmpty && home.resumeAt == Self.program)
        let drained = recovered.tracker.drain()
        #expect(drained.count == 1 && drained[otherSlot]?.returnAddress == Self.programElsewhere)
    }

    /// A trampoline that could not be written: the call is withdrawn as if never made.
    @Test func aWithdrawnCallLeavesNothingInFlight() throws {
        var process = MiniProcess()
        try process.call("malloc", rdi: 8, rsp: Self.slot, returnAddress: Self.program)
        var registers = GeneralRegisters()
        (registers.rdi, registers.rsp) = (8, Self.slot)
        let entryPoint = try #require(AllocatorSymbols.entryPoint(named: "malloc"))
        process.tracker.withdraw(CallEntry(function: entryPoint.function, arguments: CallArguments(entryPoint.convention, registers: registers),
                                           thread: MiniProcess.main, rsp: Self.slot, returnAddress: Self.program, site: 0))
        #expect(process.tracker.pending.isEmpty && process.tracker.outermostSlot(of: MiniProcess.main) == nil)
    }
}
