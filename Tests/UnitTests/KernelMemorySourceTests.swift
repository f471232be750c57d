import GuestMemory
import Introspection
import Reachability
import Testing
import X86

/// Kernel virtual memory as the kernel scan reads it: page tables, the direct map by arithmetic,
/// holes skipped in big steps, ranges at the top of the address space, and the frame cache.
@Suite struct KernelMemorySourceTests {
    static let mapped: UInt64 = 0xFFFF_C900_0040_0000
    static let directMap: UInt64 = 0xFFFF_8880_0000_0000

    func source() throws -> (KernelMemorySource, CraftedKernelMemory) {
        var guest = try CraftedKernelMemory()
        try guest.map(Self.mapped, to: 0x40_0000)
        try guest.put64(0xFFFF_8880_1234_5678, at: Self.mapped + 8)
        try guest.put64(0x0000_7FFF_0000_1000, at: Self.mapped + 16)  // a user address: never a kernel object
        try guest.put64(0xFFFF_FFFF_8100_0000, at: Self.mapped + 0x28)
        try guest.memory.store(UInt64(0xFFFF_8880_0000_0042), at: GuestPhysicalAddress(0x60_0010))
        return (KernelMemorySource(space: try guest.view().space, directMapBase: Self.directMap), guest)
    }

    @Test func wordsComeThroughPageTablesAndTheDirectMap() throws {
        var (s, _) = try source()
        var seen: [UInt64] = []
        s.forEachCandidate(in: Self.mapped + 4..<Self.mapped + 0x30) { seen.append($0) }
        #expect(seen == [0xFFFF_8880_1234_5678, 0xFFFF_FFFF_8100_0000])
        seen = []
        s.forEachCandidate(in: Self.directMap + 0x60_0000..<Self.directMap + 0x60_1000) { seen.append($0) }
        #expect(seen == [0xFFFF_8880_0000_0042])
        #expect(s.frames(of: Self.mapped + 0xFF8..<Self.mapped + 0x1008) == [0x400, 0x401])
        #expect(s.frames(of: Self.directMap + 0x3000..<Self.directMap + 0x3001) == [3])
        #expect(!s.isIncomplete)
    }

    @Test func holesAndTheTopOfTheAddressSpaceEndPromptly() throws {
        var (s, _) = try source()
        var count = 0
        // 1 TiB of nothing, and ranges that end at 2^64 - 1: no trap, no hang, nothing missed.
        s.forEachCandidate(in: 0xFFFF_C000_0000_0000..<0xFFFF_C100_0000_0000) { _ in count += 1 }
        s.forEachCandidate(in: UInt64.max - 0x2000..<UInt64.max) { _ in count += 1 }
        s.forEachCandidate(in: UInt64.max - 3..<UInt64.max) { _ in count += 1 }
        s.forEachCandidate(in: 0x1000..<0xFFFF_8000_0001_0000) { _ in count += 1 }
        #expect(count == 0)
        #expect(s.frames(of: UInt64.max - 0x2000..<UInt64.max) == [])
        #expect(!s.isIncomplete)
        // Past guest RAM the direct-map shortcut does not apply: the page tables say not present.
        s.forEachCandidate(in: Self.directMap + (1 << 30)..<Self.directMap + (1 << 30) + 8) { _ in count += 1 }
        #expect(count == 0)
    }

    func candidates(_ s: inout KernelMemorySource, _ range: Range<UInt64>) -> [UInt64] {
        var seen: [UInt64] = []
        s.forEachCandidate(in: range) { seen.append($0) }
        return seen
    }

    @Test func subPageRangesFromTheCacheGetExactlyTheirWords() throws {
        let made = try source()
        var direct = made.0
        let guest = made.1
        // Every slot of two frames holds a kernel pointer naming its own address, but for a few
        // user values and small integers (never candidates).
        let page = Self.directMap + 0x60_0000
        for slot: UInt64 in 0..<1024 {
            let value = slot % 7 == 3 ? slot : slot % 11 == 5 ? 0x7FFF_0000_0000 + slot : page + slot * 8
            try guest.memory.store(value, at: GuestPhysicalAddress(0x60_0000 + slot * 8))
        }
        let cache = FrameCandidateCache(window: .kernel)
        var cached = KernelMemorySource(space: try guest.view().space, directMapBase: Self.directMap, cache: cache)
        var random = DeterministicRandom(seed: 14)
        var ranges: [Range<UInt64>] = [page..<page + 0x2000, page + 0x1000..<page + 0x1000, page + 5..<page + 12, page + 0xFF9..<page + 0x1011,
                                       page + 8..<page + 16, page + 0xFF8..<page + 0x1000, page..<page + 1]
        for _ in 0..<300 {
            let low = page + random.next() % (0x2000 - 300), length = random.next() % 300
            ranges.append(low..<low + length)
        }
        for range in ranges {
            let expected = (range.lowerBound..<range.upperBound).filter { $0 & 7 == 0 && $0 + 8 <= range.upperBound }
                .filter { ($0 - page) / 8 % 7 != 3 && ($0 - page) / 8 % 11 != 5 }
            #expect(candidates(&cached, range) == expected, "\(range)")
            #expect(candidates(&direct, range) == expected, "\(range)")
        }
        // One read per frame for all those ranges; the page tables' frames are cached the same way.
        #expect(cache.framesRead == 2 && cache.framesReused == 0 && cache.cachedFrames == 2)
        #expect(candidates(&cached, Self.mapped + 4..<Self.mapped + 0x30) == [0xFFFF_8880_1234_5678, 0xFFFF_FFFF_8100_0000])
        #expect(cached.bytesScanned == direct.bytesScanned + 0x28 && !cached.isIncomplete)
    }

    @Test func aCachedFrameIsServedUntilItIsDroppedAsWritten() throws {
        let (_, guest) = try source()
        let space = try guest.view().space
        let cache = FrameCandidateCache(window: .kernel)
        let range = Self.mapped..<Self.mapped + 0x30
        var first = KernelMemorySource(space: space, directMapBase: Self.directMap, cache: cache)
        #expect(candidates(&first, range) == [0xFFFF_8880_1234_5678, 0xFFFF_FFFF_8100_0000])
        try guest.put64(0xFFFF_8880_0000_0100, at: Self.mapped + 0x20)
        // The write log has not said so: the next scan still sees what was read (and counts a reuse).
        var second = KernelMemorySource(space: space, directMapBase: Self.directMap, cache: cache)
        #expect(candidates(&second, range) == [0xFFFF_8880_1234_5678, 0xFFFF_FFFF_8100_0000])
        #expect(cache.framesRead == 1 && cache.framesReused == 1)
        cache.invalidate([0x400])
        var third = KernelMemorySource(space: space, directMapBase: Self.directMap, cache: cache)
        #expect(candidates(&third, range) == [0xFFFF_8880_1234_5678, 0xFFFF_8880_0000_0100, 0xFFFF_FFFF_8100_0000])
        #expect(cache.framesRead == 2)
        // forEachWord (kernel-refs) always reads memory, never the cache.
        var words: [UInt64: UInt64] = [:]
        second.forEachWord(in: range) { words[$0] = $1 }
        #expect(words[Self.mapped + 0x20] == 0xFFFF_8880_0000_0100 && words[Self.mapped + 16] == 0x0000_7FFF_0000_1000)
    }

    @Test func aFullCacheStopsKeepingFramesAndAUserCacheIsNotUsed() throws {
        let (_, guest) = try source()
        let space = try guest.view().space
        let cache = FrameCandidateCache(window: .kernel)
        var limited = KernelMemorySource(space: space, directMapBase: Self.directMap, cache: cache,
                                         budget: ScanBudget(deadline: nil, memoryBytes: 1))
        #expect(candidates(&limited, Self.directMap + 0x60_0000..<Self.directMap + 0x60_1000) == [0xFFFF_8880_0000_0042])
        #expect(candidates(&limited, Self.mapped..<Self.mapped + 0x1000) == [0xFFFF_8880_1234_5678, 0xFFFF_FFFF_8100_0000])
        #expect(cache.framesRead == 2 && cache.cachedFrames == 1)  // the first one, then the cache was full
        let user = FrameCandidateCache(window: .user)
        var ignoring = KernelMemorySource(space: space, directMapBase: Self.directMap, cache: user)
        #expect(ignoring.cache == nil)
        #expect(candidates(&ignoring, Self.mapped..<Self.mapped + 0x30) == [0xFFFF_8880_1234_5678, 0xFFFF_FFFF_8100_0000])
        #expect(user.framesRead == 0)
    }

    @Test func aDeadlineStopsTheSource() throws {
        var (s, _) = try source()
        s.budget = ScanBudget(deadline: 0, memoryBytes: .max, clock: { 1 })
        var count = 0
        s.forEachCandidate(in: Self.mapped..<Self.mapped + 0x1000) { _ in count += 1 }
        #expect(count == 0 && s.isIncomplete && s.frames(of: Self.mapped..<Self.mapped + 1) == nil)
    }
}
