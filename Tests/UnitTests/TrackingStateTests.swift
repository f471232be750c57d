@testable import AllocationTracing
@testable import AllocationLedger
import Foundation
import GuestMemory
import Introspection
import Testing
import X86

/// The tracking state a snapshot of a tracked guest saves (issue 13): a call in flight, the
/// ledger and the breakpoint table come back from their saved form and tracking goes on; a saved
/// state that does not hold together is refused.
struct TrackingStateTests {
    static let slot: UInt64 = 0x7ffe_0000_1000
    static let program: UInt64 = 0x40_1234
    static let early: UInt64 = 0x55_0000_1000, late: UInt64 = 0x55_0000_2000

    @Test func aCallInFlightAndTheLedgerGoOnAfterARestore() throws {
        var process = MiniProcess()
        // One block allocated and returned before the save, one call still in flight at the save.
        #expect(try process.call("malloc", rdi: 24, rsp: Self.slot, returnAddress: Self.program) == .redirect(slot: Self.slot))
        _ = try #require(try process.ret(slot: Self.slot, rax: Self.early)?.get())
        #expect(try process.call("calloc", rdi: 4, rsi: 8, rsp: Self.slot, returnAddress: Self.program) == .redirect(slot: Self.slot))
        let savedCalls = try JSONEncoder().encode(process.tracker)
        let savedLedger = try JSONEncoder().encode(process.ledger.savedState())

        var restored = MiniProcess()
        restored.words = process.words
        restored.time = process.time
        restored.tracker = try JSONDecoder().decode(CallTracker.self, from: savedCalls)
        try restored.ledger.restore(try JSONDecoder().decode(LedgerState.self, from: savedLedger))
        #expect(restored.tracker.pending.count == 1)
        // The call in flight returns into the restored tracker; the block from before is freed.
        let completion = try #require(try restored.ret(slot: Self.slot, rax: Self.late)?.get())
        #expect(completion.effects == [.allocated(address: Self.late, size: 32)])
        #expect(try restored.call("free", rdi: Self.early, rsp: Self.slot, returnAddress: Self.program) == .release(address: Self.early))
        #expect(restored.findings.isEmpty, "a block allocated before the save is known after the restore")
        #expect(restored.live.keys.sorted() == [Self.late])
        #expect(restored.spaceCounters?.allocations == 2 && restored.spaceCounters?.releases == 1)
        // A second free of it is still a double free: the ledger kept its recent releases.
        _ = try restored.call("free", rdi: Self.early, rsp: Self.slot, returnAddress: Self.program)
        #expect(restored.findings.map(\.kind) == [.doubleFree])
    }

    @Test func aLedgerStateThatDoesNotHoldTogetherIsRefused() throws {
        let ledger = AllocationLedger()
        ledger.allocate(in: MiniProcess.root, address: Self.early, size: 8, function: .malloc, stack: [1, 2], thread: 1, time: 1)
        ledger.allocate(in: MiniProcess.root, address: Self.late, size: 8, function: .malloc, stack: [3], thread: 1, time: 2)
        var state = ledger.savedState()
        let target = AllocationLedger()
        state.stacks = [[1, 2]]
        #expect(throws: LedgerStateError.unknownStack(1)) { try target.restore(state) }
        state.stacks = [[1, 2], [1, 2]]
        #expect(throws: LedgerStateError.duplicateStacks) { try target.restore(state) }
        state = ledger.savedState()
        state.live += state.live
        #expect(throws: LedgerStateError.duplicateSpace(MiniProcess.root)) { try target.restore(state) }
        #expect(target.snapshot().spaces.isEmpty, "a refused state changes nothing")
    }

    @Test func theBreakpointTableKeepsItsPageCopies() throws {
        let site = AllocatorSite(symbol: "malloc", aliases: [], entryPoint: try #require(AllocatorSymbols.entryPoint(named: "malloc")),
                                 address: 0x1040, fileOffset: 0x40, instruction: try #require(PrologueInstruction.decode([0x55])))
        let physical = GuestPhysicalAddress(0x12_3040)
        var table = BreakpointTable()
        table.sites[physical] = ArmedSite(site: site, physical: physical, original: 0x55, guestPath: "/lib/libc.so.6", inode: 7, mapping: 9)
        table.files[7] = .armed(sites: 1)
        table.pagesBefore[physical.alignedDown(to: 4096)] = (0..<4096).map { UInt8($0 & 0xFF) }
        let decoded = try JSONDecoder().decode(BreakpointTable.self, from: try JSONEncoder().encode(table))
        #expect(decoded.sites[physical]?.site == site && decoded.sites[physical]?.original == 0x55)
        #expect(decoded.pagesBefore == table.pagesBefore)

        // A breakpoint filed under another address, or a page copy that is not a page, is refused.
        var moved = table
        moved.sites = [GuestPhysicalAddress(0x99_9000): table.sites[physical]!]
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(BreakpointTable.self, from: try JSONEncoder().encode(moved)) }
        var short = table
        short.pagesBefore[physical.alignedDown(to: 4096)] = [1, 2, 3]
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(BreakpointTable.self, from: try JSONEncoder().encode(short)) }
        // A displaced instruction is saved as its bytes and must decode again.
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(PrologueInstruction.self, from: Data("[15, 11]".utf8)) }
    }

    @Test func aRestoredClockGoesOnFromTheSavedTime() {
        let clock = TrackerClock(continuingFrom: 90_000_000_000)
        #expect(clock.now >= 90_000_000_000 && clock.now < 100_000_000_000)
        #expect(TrackerClock(continuingFrom: .max).now <= DispatchTime.now().uptimeNanoseconds, "never before the host's boot")
    }
}
