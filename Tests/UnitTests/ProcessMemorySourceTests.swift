import GuestMemory
import Introspection
import Reachability
import Testing

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
        var source = ProcessMemorySource(space: space, cache: FrameCandidateCache(), pageBudget: 10_000)
        // 100 TiB of address space with one 2 MiB page mapped: a few walks, not 25 billion pages.
        #expect(candidates(&source, 0x1000..<0x6400_0000_0000).isEmpty)
        #expect(source.pagesVisited < 2_000)
        #expect(!source.incomplete)
    }

    @Test func thePageBudgetEndsARunawayScanAndSaysSo() throws {
        let (_, space) = try guest()
        var source = ProcessMemorySource(space: space, cache: FrameCandidateCache(), pageBudget: 100)
        _ = candidates(&source, Self.user..<Self.user + (2 << 20))
        #expect(source.incomplete)
        #expect(source.pagesVisited == 100)
    }
}
