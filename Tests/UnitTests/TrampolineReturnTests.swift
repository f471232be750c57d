@testable import AllocationTracing
import X86
import AllocationLedger
import GuestInterface
import LeakAnalysis
import Testing

/// Which faults at the return trampoline are the `ret` of an allocator call the monitor redirected,
/// and which are forged by a guest thread (issue 11: a forged 64 KiB block at 0xfffffffffffff000
/// killed the monitor).
struct TrampolineReturnTests {
    static let trampoline = CallTracker.trampoline
    static let owner = ThreadKey(root: PageTableRoot(cr3: 0x1234_5000), fsBase: 0x7f00_1000_0740, task: 0xFFFF_8880_0311_0000)
    static let slot: UInt64 = 0x7ffe_0000_0ff8

    func call(_ function: AllocatorFunction = .malloc, size: UInt64 = 64, oldPointer: UInt64 = 0,
              resultPointer: UInt64 = 0) -> PendingCall {
        PendingCall(function: function, size: size, oldPointer: oldPointer, resultPointer: resultPointer,
                    returnAddress: 0x40_1234, stack: [], thread: 7, time: 0, owner: Self.owner)
    }

    /// The fault a real `ret` from the call makes: a user fetch of the not-present trampoline, rsp just past the slot.
    func realReturn(result: UInt64) -> TrampolineFault {
        TrampolineFault(rip: Self.trampoline, faultAddress: Self.trampoline, errorCode: 0x14, noExecute: true,
                        thread: Self.owner, rsp: Self.slot + 8, result: result)
    }

    func decide(_ fault: TrampolineFault, _ call: PendingCall?, slotWord: UInt64? = trampoline,
                stored: UInt64? = nil) -> Result<[LedgerEffect], TrampolineRejection> {
        TrampolineReturn.decide(fault, call: call, slotWord: slotWord, storedPointer: { _ in stored })
    }

    @Test func aRealReturnRecordsTheBlock() {
        #expect(decide(realReturn(result: 0x55_0000_2a0), call()) == .success([.allocated(address: 0x55_0000_2a0, size: 64)]))
        #expect(decide(realReturn(result: 0), call()) == .success([]))
    }

    @Test func aJumpFromAnotherThreadWithItsStackPointerIsRefused() {
        // Same address space and even the same FS base (user-settable), but another kernel task.
        var fault = realReturn(result: 0x55_0000_2a0)
        fault.thread = ThreadKey(root: Self.owner.root, fsBase: Self.owner.fsBase, task: 0xFFFF_8880_0311_8000)
        #expect(decide(fault, call()) == .failure(.otherThread))
        fault.thread = ThreadKey(root: Self.owner.root, fsBase: 0x7f00_2000_0740, task: Self.owner.task)
        #expect(decide(fault, call()) == .failure(.otherThread))
        fault.thread = ThreadKey(root: PageTableRoot(cr3: 0x9999_0000), fsBase: Self.owner.fsBase, task: Self.owner.task)
        #expect(decide(fault, call()) == .failure(.otherThread))
        // The task could not be read at the fault: not proven to be the owner.
        fault.thread = ThreadKey(root: Self.owner.root, fsBase: Self.owner.fsBase, task: 0)
        #expect(decide(fault, call()) == .failure(.otherThread))
    }

    @Test func onlyAUserFetchOfTheNotPresentTrampolineIsAReturn() {
        for code: UInt64? in [0x15, 0x16, 0x10, 0x04, 0x06, 0x1C, 0x34, nil] {
            var fault = realReturn(result: 0x55_0000_2a0)
            fault.errorCode = code
            #expect(decide(fault, call()) == .failure(.notATrampolineFetch), "error code \(String(describing: code))")
        }
        var withoutNX = realReturn(result: 0x55_0000_2a0)
        withoutNX.noExecute = false
        withoutNX.errorCode = 0x04       // no I/D bit without EFER.NXE
        #expect(decide(withoutNX, call()) == .success([.allocated(address: 0x55_0000_2a0, size: 64)]))
        var otherAddress = realReturn(result: 0x55_0000_2a0)
        otherAddress.faultAddress = Self.trampoline + 8
        #expect(decide(otherAddress, call()) == .failure(.notATrampolineFetch))
        var otherRIP = realReturn(result: 0x55_0000_2a0)
        otherRIP.rip = Self.trampoline + 1
        #expect(decide(otherRIP, call()) == .failure(.notATrampolineFetch))
    }

    @Test func aSlotThatNoLongerHoldsTheTrampolineWasNotLeftByARet() {
        #expect(decide(realReturn(result: 0x55_0000_2a0), call(), slotWord: 0x40_1234) == .failure(.slotOverwritten))
        #expect(decide(realReturn(result: 0x55_0000_2a0), call(), slotWord: nil) == .failure(.slotOverwritten))
        #expect(decide(realReturn(result: 0x55_0000_2a0), nil) == .failure(.noPendingCall))
    }

    @Test func implausibleResultsAreRefused() {
        // The forgery of issue 11: a 64 KiB block in the last page of the address space.
        let forged: UInt64 = 0xFFFF_FFFF_FFFF_F000
        #expect(decide(realReturn(result: forged), call(size: 65536)) == .failure(.implausibleResult(forged)))
        // Ends past the top of user space; wraps; in page 0; an unknown size (UInt64.max) with a block.
        #expect(decide(realReturn(result: 0x7FFF_FFFF_0000), call(size: 0x10_0000)) == .failure(.implausibleResult(0x7FFF_FFFF_0000)))
        #expect(decide(realReturn(result: 0x7FFF_0000_0000), call(size: 1 << 56)) == .failure(.implausibleResult(0x7FFF_0000_0000)))
        #expect(decide(realReturn(result: 0x10), call()) == .failure(.implausibleResult(0x10)))
        #expect(decide(realReturn(result: 0x55_0000_2a0), call(size: .max)) == .failure(.implausibleResult(0x55_0000_2a0)))
        // A block that ends exactly at the top of user space is possible.
        #expect(decide(realReturn(result: 0x7FFF_FFFF_E000), call(size: 0x1000)) == .success([.allocated(address: 0x7FFF_FFFF_E000, size: 0x1000)]))
    }

    @Test func pvallocRoundsUpWithoutWrapping() {
        #expect(decide(realReturn(result: 0x55_0000_0000), call(.pvalloc, size: 100)) == .success([.allocated(address: 0x55_0000_0000, size: 4096)]))
        #expect(decide(realReturn(result: 0x55_0000_0000), call(.pvalloc, size: .max - 10)) == .failure(.implausibleResult(0x55_0000_0000)))
    }

    @Test func reallocReleasesTheOldBlockOnlyWhenTheResultIsPlausible() {
        #expect(decide(realReturn(result: 0x55_0000_1000), call(.realloc, size: 32, oldPointer: 0x55_0000_0100))
                == .success([.released(address: 0x55_0000_0100), .allocated(address: 0x55_0000_1000, size: 32)]))
        #expect(decide(realReturn(result: 0), call(.realloc, size: 0, oldPointer: 0x55_0000_0100)) == .success([.released(address: 0x55_0000_0100)]))
        #expect(decide(realReturn(result: 0xFFFF_FFFF_FFFF_F000), call(.realloc, size: 32, oldPointer: 0x55_0000_0100))
                == .failure(.implausibleResult(0xFFFF_FFFF_FFFF_F000)))
    }

    @Test func posixMemalignReadsAPlausibleStoredPointerThroughABoundedMemptr() {
        let memptr: UInt64 = 0x7ffe_0000_0f00
        let posix = call(.posixMemalign, size: 256, resultPointer: memptr)
        #expect(decide(realReturn(result: 0), posix, stored: 0x55_0000_4000) == .success([.allocated(address: 0x55_0000_4000, size: 256)]))
        // Only eax counts; an error code records nothing.
        #expect(decide(realReturn(result: 0xDEAD_0000_0000_0000), posix, stored: 0x55_0000_4000) == .success([.allocated(address: 0x55_0000_4000, size: 256)]))
        #expect(decide(realReturn(result: 12), posix, stored: 0x55_0000_4000) == .success([]))
        #expect(decide(realReturn(result: 0), posix, stored: nil) == .failure(.implausibleStoredPointer))
        #expect(decide(realReturn(result: 0), posix, stored: 0xFFFF_FFFF_FFFF_FF00) == .failure(.implausibleStoredPointer))
        // memptr itself outside user space, or in its last 8 bytes.
        for bad: UInt64 in [0xFFFF_8880_0000_0000, Self.trampoline - 4, 8] {
            #expect(decide(realReturn(result: 0), call(.posixMemalign, size: 256, resultPointer: bad), stored: 0x55_0000_4000)
                    == .failure(.implausibleStoredPointer))
        }
    }
}
