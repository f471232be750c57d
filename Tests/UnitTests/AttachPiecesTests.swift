import AllocationLedger
import Introspection
import LeakAnalysis
import GuestInterface
import GuestMemory
import Monitor
import Testing
import VMM
import X86

/// The pieces of `leakvisor attach` that need no guest: the machine's trap-handler slot, the
/// attach request's checks, and the ledger's new allocator case.
struct AttachPiecesTests {
    /// A handler that owns nothing (only its identity matters to the slot).
    final class InertHandler: GuestTrapHandler, Sendable {
        var wantsUserTraps: Bool { true }
        func userSpaceStarted(_ state: VCPUSnapshot, memory: GuestMemory) {}
        func userBreakpoint(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool { false }
        func userFetchFault(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool { false }
        func kernelHook(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool { false }
        var kernelHookSites: [UInt64] { [] }
    }

    @Test func everyInstallIsAChangeTheVCPUsSee() {
        let slot = TrapHandlerSlot()
        #expect(slot.current.handler == nil && slot.generation == 0)
        let handler = InertHandler()
        slot.install(handler)
        #expect(slot.current.handler === handler && slot.generation == 1 && slot.current.generation == 1)
        // The same handler again (re-attach after detach) still counts: the gates are re-placed.
        slot.install(handler)
        #expect(slot.generation == 2)
        slot.install(nil)
        #expect(slot.current.handler == nil && slot.generation == 3)
        #expect(TrapHandlerSlot(handler).current.handler === handler)
    }

    @Test func concurrentInstallsAreAllCounted() async {
        let slot = TrapHandlerSlot()
        let handler = InertHandler()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { for _ in 0..<100 { slot.install(handler) } } }
        }
        #expect(slot.generation == 800 && slot.current.generation == 800)
    }

    @Test func badAttachRequestsAreRefusedBeforeAnySession() {
        let attachment = TrackingAttachment(session: nil) { _, _ in
            Issue.record("no session is made for a refused request")
            throw TrackingAttachment.RequestError.unknownTrack("never")
        }
        #expect(throws: TrackingAttachment.RequestError.self) { try attachment.attach(track: "kernel", reportPath: nil) }
        #expect(throws: TrackingAttachment.RequestError.self) { try attachment.attach(track: "user", reportPath: "relative.json") }
        #expect(attachment.current == nil)
    }

    @Test func aFailedSessionLeavesNoneBehind() {
        struct NoKernel: Error {}
        let attachment = TrackingAttachment(session: nil) { _, _ in throw NoKernel() }
        #expect(throws: NoKernel.self) { try attachment.attach(track: "user-malloc", reportPath: "/tmp/r.json") }
        #expect(attachment.current == nil)
    }

    @Test func blocksFromBeforeTheAttachKeepTheirFunctionAndOthersTheirIndex() {
        let block = LiveBlock(size: 24, time: 1, stack: 0, thread: 7, function: .beforeAttach)
        #expect(block.function == .beforeAttach && block.size == 24)
        // Appended last: the cases before keep the index LiveBlock stores.
        #expect(AllocatorFunction.allCases.firstIndex(of: .operatorDeleteArray) == 12)
        #expect(AllocatorFunction.allCases.last == .beforeAttach)
        #expect(AllocatorFunction.beforeAttach.rawValue == "allocated before attach" && !AllocatorFunction.beforeAttach.releases)
    }
}

/// How the report shows blocks found at attach: one group per class, no stack, said so in text.
struct BeforeAttachReportTests {
    @Test func blocksFromBeforeTheAttachAreGroupedWithoutAStack() {
        let space = PageTableRoot(cr3: 0x1234_5000)
        let ledger = AllocationLedger()
        ledger.identify(space, as: ProcessIdentity(pid: 42, command: "prog"), modules: [])
        ledger.allocate(in: space, address: 0x1010, size: 24, function: .beforeAttach, stack: [], thread: 42, time: 0)
        ledger.allocate(in: space, address: 0x1030, size: 40, function: .beforeAttach, stack: [], thread: 42, time: 0)
        let report = LeakReportBuilder(files: GuestSymbolFiles()).build(ledger.snapshot(), seconds: 1)
        let groups = report.processes.first?.groups ?? []
        #expect(groups.count == 1 && groups.first?.function == .beforeAttach && groups.first?.frames.isEmpty == true)
        #expect(groups.first?.sizes == [40, 24])
        let text = LeakReportText.render(report)
        #expect(text.contains("Outstanding: 64 byte(s) in 2 object(s) allocated before the attach (sizes 40, 24), age 1.0 s to 1.0 s,"
                              + " thread 42 (no stack)\n"), "\(text)")
        #expect(!text.contains("allocated by allocated"))
    }
}
