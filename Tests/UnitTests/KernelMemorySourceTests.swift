import GuestMemory
import Introspection
import Reachability
import Testing
import X86

/// Kernel virtual memory as the kernel scan reads it: page tables, the direct map by arithmetic,
/// holes skipped in big steps, and ranges at the top of the address space.
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

    @Test func aDeadlineStopsTheSource() throws {
        var (s, _) = try source()
        s.budget = ScanBudget(deadline: 0, memoryBytes: .max, clock: { 1 })
        var count = 0
        s.forEachCandidate(in: Self.mapped..<Self.mapped + 0x1000) { _ in count += 1 }
        #expect(count == 0 && s.isIncomplete && s.frames(of: Self.mapped..<Self.mapped + 1) == nil)
    }
}
