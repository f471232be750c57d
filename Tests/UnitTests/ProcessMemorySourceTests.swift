import AllocationLedger
import AllocationTracing
import GuestInterface
import GuestMemory
import Introspection
import LeakAnalysis
import Reachability
import Synchronization
import Testing
import X86

/// Reading a process's memory for a scan: candidate words through the page tables, the frame
/// cache (reused until invalidated), and unmapped or huge ranges that must not make a scan run away.
@Suite struct ProcessMemorySourceTests {
    static let user: UInt64 = 0x4000_0000
    static let physical: UInt64 = 0x40_0000

    func guest() throws -> (CraftedKernelMemory, AddressSpace) {
        var crafted = try CraftedKernelMemory(kernel: try CraftedKernelMemory.realKernel.get(), size: 16 << 20)
        try crafted.map(Self.user, to: Self.physical)
        let space = AddressSpace(memory: crafted.memory, root: PageTableRoot(tableAddress: GuestPhysicalAddress(0x1000)),
                                 mode: PageTableMode(cr4: 0))
        return (crafted, space)
    }

    func candidates(_ source: inout ProcessMemorySource, _ range: Range<UInt64>) -> [UInt64] {
        var found: [UInt64] = []
        source.forEachCandidate(in: range) { found.append($0) }
        return found
    }

    @Test func onlyPointerLikeWordsInTheRangeAreCandidates() throws {
        let (crafted, space) = try guest()
        try crafted.put64(0x5555_0000_1000, at: Self.user + 8)      // a user pointer
        try crafted.put64(42, at: Self.user + 16)                     // a small integer
        try crafted.put64(0xFFFF_8880_0000_0000, at: Self.user + 24) // a kernel address
        try crafted.put64(0x7FFF_0000_0010, at: Self.user + 4096 + 8)
        var source = ProcessMemorySource(space: space, cache: FrameCandidateCache())
        #expect(candidates(&source, Self.user..<Self.user + 8192) == [0x5555_0000_1000, 0x7FFF_0000_0010])
        #expect(candidates(&source, Self.user + 16..<Self.user + 8192) == [0x7FFF_0000_0010])
        #expect(candidates(&source, Self.user + 8..<Self.user + 15) == [])    // a slot must lie wholly inside
        #expect(source.bytesScanned > 0)
    }

    @Test func theCacheServesUnwrittenFramesAndRereadsInvalidatedOnes() throws {
        let (crafted, space) = try guest()
        try crafted.put64(0x5555_0000_1000, at: Self.user)
        let cache = FrameCandidateCache()
        var first = ProcessMemorySource(space: space, cache: cache)
        #expect(candidates(&first, Self.user..<Self.user + 4096) == [0x5555_0000_1000])
        #expect(cache.framesRead == 1)
        try crafted.put64(0x5555_0000_2000, at: Self.user)
        var second = ProcessMemorySource(space: space, cache: cache)
        // Not invalidated: the cache still answers with what it read (the dirty log is what tells it otherwise).
        #expect(candidates(&second, Self.user..<Self.user + 4096) == [0x5555_0000_1000])
        #expect(cache.framesRead == 1 && cache.framesReused == 1)
        cache.invalidate([Self.physical >> 12])
        var third = ProcessMemorySource(space: space, cache: cache)
        #expect(candidates(&third, Self.user..<Self.user + 4096) == [0x5555_0000_2000])
        #expect(cache.framesRead == 2)
        #expect(third.frames(of: Self.user..<Self.user + 100) == [Self.physical >> 12])
    }

    @Test func hugeUnmappedRangesAreSkippedByTableLevel() throws {
        let (_, space) = try guest()
        var source = ProcessMemorySource(space: space, cache: FrameCandidateCache(), budget: .unlimited)
        // 100 TiB of address space with one 2 MiB page mapped: a few walks, not 25 billion pages.
        #expect(candidates(&source, 0x1000..<0x6400_0000_0000).isEmpty)
        #expect(source.pagesVisited < 2_000)
        #expect(!source.isIncomplete)
        // All of user space: one step per absent PML4 entry (512 GiB), PDPT entry (1 GiB) or PD
        // entry (2 MiB) around the one mapped page, and the page itself.
        var whole = ProcessMemorySource(space: space, cache: FrameCandidateCache(), budget: .unlimited)
        _ = candidates(&whole, 0..<UserSpace.end)
        #expect(whole.pagesVisited <= 256 + 512 + 512 + 512)
        #expect(whole.bytesScanned == 2 << 20)
    }

    /// Ranges past user space (the non-canonical hole, the kernel half, a block whose end wraps)
    /// are refused outright: no walk, no step.
    @Test func rangesOutsideUserSpaceAreRefusedWithoutASingleStep() throws {
        let (_, space) = try guest()
        var source = ProcessMemorySource(space: space, cache: FrameCandidateCache(), budget: .unlimited)
        #expect(candidates(&source, 0x0000_8000_0000_0000..<0xFFFF_8000_0000_0000).isEmpty)
        #expect(candidates(&source, 0xFFFF_FFFF_FFFF_F000..<UInt64.max).isEmpty)
        #expect(source.pagesVisited == 0)
        let hole: UInt64 = 0xFFFF_8000_0000_0000 - 0x0000_8000_0000_0000
        #expect(source.refusedBytes == hole + 0xFFF)
        #expect(source.frames(of: 0xFFFF_FFFF_FFFF_F000..<UInt64.max) == [])
        // A range straddling the end of user space is read up to it.
        #expect(candidates(&source, UserSpace.end - 4096..<UserSpace.end + 4096).isEmpty)
        #expect(source.refusedBytes == hole + 0xFFF + 4096)
        #expect(!source.isIncomplete)
    }

    /// The case end to end: the ledger would refuse it, but the marker over real page
    /// tables must survive a 64 KiB block at 0xfffffffffffff000 on its own.
    @Test func theForgedBlockAtTheTopOfTheAddressSpaceThroughTheMarker() throws {
        let (crafted, space) = try guest()
        try crafted.put64(Self.user + 64, at: Self.user)              // a root → a real block
        let index = HeapBlockIndex(blocks: [(Self.user + 64, 32), (0xFFFF_FFFF_FFFF_F000, 0x1_0000)])
        var source = ProcessMemorySource(space: space, cache: FrameCandidateCache())
        let result = ReachabilityMarker().classify(index, rootRanges: [Self.user..<Self.user + 8], rootWords: [],
                                                   memory: &source)
        #expect(result.complete)
        #expect(result.classes == [.reachable, .directLeak])
        #expect(source.refusedBytes == 0xFFF)
    }

    /// A clock that ticks once per reading: the deadline falls after a known number of steps.
    final class TickingClock: Sendable {
        let ticks = Mutex<UInt64>(0)
        func now() -> UInt64 { ticks.withLock { $0 += 1; return $0 } }
    }

    @Test func theTimeLimitEndsAScanAndSaysSo() throws {
        let (_, space) = try guest()
        let clock = TickingClock()
        var source = ProcessMemorySource(space: space, cache: FrameCandidateCache(),
                                         budget: ScanBudget(deadline: 101, memoryBytes: .max, clock: { clock.now() }))
        _ = candidates(&source, Self.user..<Self.user + (2 << 20))
        #expect(source.stop == .timeLimit)
        #expect(source.isIncomplete)
        #expect(source.pagesVisited == 100)
        // Stopped means stopped: later ranges are not read, and block frames are unknown.
        _ = candidates(&source, Self.user..<Self.user + 4096)
        #expect(source.pagesVisited == 100)
        #expect(source.frames(of: Self.user..<Self.user + 4096) == nil)
    }

    @Test func theMemoryLimitEndsAScanAndSaysSo() throws {
        let (crafted, space) = try guest()
        for slot in 0..<512 { try crafted.put64(0x5555_0000_0000 + UInt64(slot) * 8, at: Self.user + 4096 + UInt64(slot) * 8) }
        let cache = FrameCandidateCache()
        // Room for the first page's words and maps, not for the second page's 512 candidates.
        var source = ProcessMemorySource(space: space, cache: cache, budget: ScanBudget(memoryBytes: 4096))
        _ = candidates(&source, Self.user..<Self.user + (2 << 20))
        #expect(source.stop == .memoryLimit)
        #expect(source.pagesVisited == 2)
        #expect(cache.storedBytes == 80 + (80 + 512 * 8))
        #expect(source.memoryInUse > 4096)
    }

    @Test func aMarkingCutShortByItsBudgetLeavesUnprovenBlocksUnclassified() throws {
        let (crafted, space) = try guest()
        // root → A → B, and a leak C: with a budget of three steps the marking reads the root page
        // and A's page, proves A and B reachable, and stops before B's page and the leak.
        let a = Self.user + 0x1000, b = Self.user + 0x2000, c = Self.user + 0x3000
        try crafted.put64(a, at: Self.user)
        try crafted.put64(b, at: a)
        let index = HeapBlockIndex(blocks: [(a, 64), (b, 64), (c, 64)])
        let clock = TickingClock()
        var source = ProcessMemorySource(space: space, cache: FrameCandidateCache(),
                                         budget: ScanBudget(deadline: 3, memoryBytes: .max, clock: { clock.now() }))
        let result = ReachabilityMarker().classify(index, rootRanges: [Self.user..<Self.user + 8], rootWords: [], memory: &source)
        #expect(!result.complete)
        #expect(result.classes == [.reachable, .reachable, nil])
        // With room to finish, the leak is proven.
        var full = ProcessMemorySource(space: space, cache: FrameCandidateCache(), budget: .unlimited)
        let exact = ReachabilityMarker().classify(index, rootRanges: [Self.user..<Self.user + 8], rootWords: [], memory: &full)
        #expect(exact.complete)
        #expect(exact.classes == [.reachable, .reachable, .directLeak])
    }
}
