import AllocationLedger
import AllocationTracing
import GuestInterface
import GuestMemory
import Monitor
import Synchronization
import Testing
import X86

/// The closing kernel summary's figures and order, and the handler chain `--track all` uses.
struct KernelLedgerSummaryTests {
    @Test func theSummaryCountsAndRanksOutstandingCallSites() {
        let ledger = KernelObjectLedger()
        let base: UInt64 = 0xFFFF_8880_0100_0000
        for i in 0..<3 as Range<UInt64> {
            ledger.allocate(KernelAllocation(address: base + i * 0x100, requestedSize: 100, allocatedSize: 128, allocator: .kmalloc,
                                             callSite: 0xAAA, time: i))
        }
        ledger.allocate(KernelAllocation(address: base + 0x1000, requestedSize: 192, allocatedSize: 192, allocator: .kmemCache,
                                         cacheName: "dentry", callSite: 0xBBB, time: 5))
        ledger.free(base, by: .kfree, callSite: 0xCCC, time: 6)
        ledger.free(base + 0x9000, by: .kfree, callSite: 0xCCC, time: 7)
        var counters = KernelTrackerCounters()
        counters.traps = ["__traceiter_kmalloc": 3, "__traceiter_kfree": 2, "__traceiter_kmem_cache_alloc": 1]
        counters.events = counters.traps
        let summary = KernelLedgerSummary(ledger: ledger.snapshot(), counters: counters, describe: { "f\(String($0, radix: 16))" })
        let sites = summary.outstandingSites()
        #expect(sites.map(\.callSite) == [0xAAA, 0xBBB] && sites[0].objects == 2 && sites[0].bytes == 256 && sites[1].cache == "dentry")
        let text = summary.text
        #expect(text.contains("kernel allocations: 4 object(s) allocated (kmalloc 3, kmem_cache_alloc 1, vmalloc 0), 1 freed, 3 outstanding (448 bytes)"), "\(text)")
        #expect(text.contains("frees of objects allocated before tracking: 1"), "\(text)")
        #expect(text.contains("traps: 6 for 6 event(s) (1.00 per event): __traceiter_kfree 2/2, __traceiter_kmalloc 3/3"), "\(text)")
        #expect(text.contains("  findings: 0\n"))
        #expect(text.contains("2 object(s), 256 bytes: kmalloc from faaa") && text.contains("kmem_cache_alloc [dentry] from fbbb"), "\(text)")
    }

    /// A handler that owns kernel hooks at one address and counts what it is offered.
    final class Owner: GuestTrapHandler, Sendable {
        let rip: UInt64
        let wants: Bool
        let offered = Mutex(0)
        let started = Mutex(0)
        init(rip: UInt64, wants: Bool) { self.rip = rip; self.wants = wants }
        var wantsUserTraps: Bool { wants }
        func userSpaceStarted(_ state: VCPUSnapshot, memory: GuestMemory) { started.withLock { $0 += 1 } }
        func userBreakpoint(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool { false }
        func userFetchFault(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool { false }
        func kernelHook(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
            offered.withLock { $0 += 1 }
            guard trap.state.registers.rip == rip else { return false }
            trap.resume.rip = rip + 5
            return true
        }
        var kernelHookSites: [UInt64] { [rip] }
    }

    @Test func theChainOffersEachTrapUntilAHandlerOwnsIt() throws {
        let (user, kernel) = (Owner(rip: 0x1000, wants: true), Owner(rip: 0x2000, wants: false))
        let chain = try #require(TrapHandlerChain.combining([user, nil, kernel]) as? TrapHandlerChain)
        #expect(chain.wantsUserTraps)
        let memory = try GuestMemory(size: 1 << 20)
        var registers = GeneralRegisters()
        registers.rip = 0x2000
        let state = VCPUSnapshot(index: 0, registers: registers, cr3: 0, cr4: 0, efer: 0, privilegeLevel: 0, systemCallEntry: 0,
                                 gsBase: 0, kernelGSBase: 0)
        var trap = GuestTrap(state: state, fsBase: 0)
        #expect(chain.kernelHook(&trap, memory: memory) && trap.resume.rip == 0x2005)
        #expect(user.offered.withLock { $0 } == 1 && kernel.offered.withLock { $0 } == 1)
        registers.rip = 0x3000
        var stray = GuestTrap(state: VCPUSnapshot(index: 0, registers: registers, cr3: 0, cr4: 0, efer: 0, privilegeLevel: 0,
                                                  systemCallEntry: 0, gsBase: 0, kernelGSBase: 0), fsBase: 0)
        #expect(!chain.kernelHook(&stray, memory: memory))
        chain.userSpaceStarted(state, memory: memory)
        #expect(user.started.withLock { $0 } == 1 && kernel.started.withLock { $0 } == 1)
        #expect(TrapHandlerChain.combining([nil, kernel]) === kernel && TrapHandlerChain.combining([nil]) == nil)
    }
}
