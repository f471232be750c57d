import Boot
import GuestMemory
import Introspection
import Testing

@testable import VMM

/// Builds x86-64 page tables in a small guest memory.
private struct TableBuilder {
    let memory: GuestMemory
    static let present: UInt64 = 0x1
    static let writable: UInt64 = 0x2
    static let pageSize: UInt64 = 0x80

    init(size: UInt64 = 4 << 20) throws {
        memory = try GuestMemory(size: size)
    }

    static func index(_ va: UInt64, level: Int) -> UInt64 { (va >> UInt64(12 + 9 * (level - 1))) & 0x1FF }

    /// Sets the entry for `va` at `level` in the table at `table`.
    func set(table: UInt64, va: UInt64, level: Int, to entry: UInt64) throws {
        try memory.store(entry, at: GuestPhysicalAddress(table + Self.index(va, level: level) * 8))
    }

    /// Links `tables` (the first one at `topLevel`, then one level down each) for `va` and points the
    /// last entry at `frame`: a 4 KiB page when the chain reaches level 1, otherwise the next table.
    func link(va: UInt64, tables: [UInt64], frame: UInt64, topLevel: Int = 4) throws {
        for (i, table) in tables.enumerated() {
            let level = topLevel - i
            let next = i + 1 < tables.count ? tables[i + 1] : frame
            try set(table: table, va: va, level: level, to: next | Self.present | Self.writable)
        }
    }
}

private let va4K: UInt64 = 0xFFFF_8880_0020_3ABC   // canonical kernel-half address
private let cr3: UInt64 = 0x1000
private let pml4 = cr3, pdpt: UInt64 = 0x2000, pd: UInt64 = 0x3000, pt: UInt64 = 0x4000

@Suite struct GuestPageWalkerTests {
    private func gva(_ v: UInt64) -> GuestVirtualAddress { GuestVirtualAddress(v) }
    private func gpa(_ v: UInt64) -> GuestPhysicalAddress { GuestPhysicalAddress(v) }

    @Test func fourLevelFourKiBMapping() throws {
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0x20)
        #expect(!walker.fiveLevel)
        #expect(try walker.translate(gva(va4K)) == gpa(0x33_5ABC))
        #expect(try walker.translate(gva(va4K & ~0xFFF)) == gpa(0x33_5000))
        #expect(try walker.translate(gva(va4K | 0xFFF)) == gpa(0x33_5FFF))
    }

    @Test func cr3FlagBitsAndHighEntryBitsAreIgnored() throws {
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        // NX (bit 63) and the protection-key bits are not part of the frame address.
        try b.set(table: pt, va: va4K, level: 1, to: 0x8000_0000_0033_5000 | 0x7800_0000_0000_0000 | 0x63)
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3 | 0x18 | 0x8000_0000_0000_0000, cr4: 0)
        #expect(try walker.translate(gva(va4K)) == gpa(0x33_5ABC))
    }

    @Test func twoMiBLargePage() throws {
        let b = try TableBuilder()
        let va: UInt64 = 0xFFFF_FFFF_8123_4567
        try b.link(va: va, tables: [pml4, pdpt], frame: pd)
        // PS set; bit 12 is the PAT bit of a large-page entry, not part of the address.
        try b.set(table: pd, va: va, level: 2, to: 0x2A0_0000 | 0x1000 | TableBuilder.pageSize | 0x3)
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0)
        #expect(try walker.translate(gva(va)) == gpa(0x2A0_0000 | (va & 0x1F_FFFF)))
        #expect(try walker.translate(gva(va)) == gpa(0x2A3_4567))
    }

    @Test func oneGiBLargePage() throws {
        let b = try TableBuilder()
        let va: UInt64 = 0x0000_7F12_3456_789A
        try b.link(va: va, tables: [pml4], frame: pdpt)
        try b.set(table: pdpt, va: va, level: 3, to: 0x1_4000_0000 | TableBuilder.pageSize | 0x3)
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0)
        #expect(try walker.translate(gva(va)) == gpa(0x1_4000_0000 | (va & 0x3FFF_FFFF)))
    }

    @Test func pageSizeBitIsIgnoredAtLevelFour() throws {
        // PS is reserved in PML4 entries; the walker keeps descending.
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        try b.set(table: pml4, va: va4K, level: 4, to: pdpt | TableBuilder.pageSize | 0x3)
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0)
        #expect(try walker.translate(gva(va4K)) == gpa(0x33_5ABC))
    }

    @Test func fiveLevelPaging() throws {
        let b = try TableBuilder()
        let pml5: UInt64 = 0x5000
        let va: UInt64 = 0x00AB_CDEF_1234_5678   // bits 56..48 non-zero: only canonical with LA57
        try b.link(va: va, tables: [pml5, pml4, pdpt, pd, pt], frame: 0x20_0000, topLevel: 5)
        let walker = GuestPageWalker(memory: b.memory, cr3: pml5, cr4: 1 << 12)
        #expect(walker.fiveLevel)
        #expect(try walker.translate(gva(va)) == gpa(0x20_0678))

        let fourLevel = GuestPageWalker(memory: b.memory, cr3: pml5, cr4: 0)
        #expect(throws: TranslationError.nonCanonical(gva(va))) { _ = try fourLevel.translate(gva(va)) }
    }

    @Test func fiveLevelNonCanonical() throws {
        let b = try TableBuilder()
        let walker = GuestPageWalker(memory: b.memory, cr3: 0x5000, cr4: 1 << 12)
        let va: UInt64 = 0x0100_0000_0000_0000    // bit 56 set, bits 63..57 clear
        #expect(throws: TranslationError.nonCanonical(gva(va))) { _ = try walker.translate(gva(va)) }
        // Bit 47 set alone is canonical with five levels (not present here).
        #expect(throws: TranslationError.notPresent(gva(0x0000_8000_0000_0000), level: 5)) {
            _ = try walker.translate(gva(0x0000_8000_0000_0000))
        }
    }

    @Test(arguments: [4, 3, 2, 1])
    func notPresentAtEachLevel(level: Int) throws {
        let b = try TableBuilder()
        let tables = [pml4, pdpt, pd, pt]
        try b.link(va: va4K, tables: tables, frame: 0x33_5000)
        // Clear only the present bit at `level`, leaving the address bits in place.
        let table = tables[4 - level]
        try b.set(table: table, va: va4K, level: level, to: (level == 1 ? 0x33_5000 : tables[5 - level]) | 0x2)
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0)
        #expect(throws: TranslationError.notPresent(gva(va4K), level: level)) { _ = try walker.translate(gva(va4K)) }
    }

    @Test func notPresentAtLevelFiveAndInEmptyTables() throws {
        let b = try TableBuilder()
        let five = GuestPageWalker(memory: b.memory, cr3: 0x5000, cr4: 1 << 12)
        #expect(throws: TranslationError.notPresent(gva(va4K), level: 5)) { _ = try five.translate(gva(va4K)) }
        let four = GuestPageWalker(memory: b.memory, cr3: 0x5000, cr4: 0)
        #expect(throws: TranslationError.notPresent(gva(0), level: 4)) { _ = try four.translate(gva(0)) }
    }

    @Test(arguments: [0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0x0001_0000_0000_0000] as [UInt64])
    func nonCanonicalAddress(_ va: UInt64) throws {
        let b = try TableBuilder()
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0)
        #expect(throws: TranslationError.nonCanonical(gva(va))) { _ = try walker.translate(gva(va)) }
    }

    @Test func canonicalEdgesAreWalked() throws {
        let b = try TableBuilder()
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0)
        for va: UInt64 in [0x0000_7FFF_FFFF_FFFF, 0xFFFF_8000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF] {
            #expect(throws: TranslationError.notPresent(gva(va), level: 4)) { _ = try walker.translate(gva(va)) }
        }
    }

    @Test func tableOutsideGuestMemory() throws {
        let b = try TableBuilder()
        // CR3 itself points outside RAM.
        let badRoot = GuestPageWalker(memory: b.memory, cr3: 0x8000_0000, cr4: 0)
        #expect(throws: TranslationError.tableOutsideMemory(gva(va4K), level: 4)) { _ = try badRoot.translate(gva(va4K)) }
        // A PML4 entry pointing outside RAM: the PDPT read fails.
        try b.set(table: pml4, va: va4K, level: 4, to: 0x40_0000_0000 | 0x3)
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0)
        #expect(throws: TranslationError.tableOutsideMemory(gva(va4K), level: 3)) { _ = try walker.translate(gva(va4K)) }
    }

    @Test func selfReferencingEntryTerminates() throws {
        // PML4[0] points at the PML4 itself (the "recursive mapping" trick): every level reads the
        // same table. The walk has a fixed number of levels, so it must end with the PML4 page.
        let b = try TableBuilder()
        try b.set(table: pml4, va: 0, level: 4, to: pml4 | 0x3)
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0)
        #expect(try walker.translate(gva(0x123)) == gpa(pml4 + 0x123))
        // Reading through it returns the table bytes.
        #expect(try walker.load64(gva(0)) == pml4 | 0x3)

        // Same with the loop at the PDPT and the large-page bit set: it resolves as a 1 GiB page.
        let b2 = try TableBuilder()
        try b2.set(table: pml4, va: 0, level: 4, to: pdpt | 0x3)
        try b2.set(table: pdpt, va: 0, level: 3, to: pdpt | 0x3)
        let w2 = GuestPageWalker(memory: b2.memory, cr3: cr3, cr4: 0)
        #expect(try w2.translate(gva(0x42)) == gpa(pdpt + 0x42))
        try b2.set(table: pdpt, va: 0, level: 3, to: pdpt | TableBuilder.pageSize | 0x3)
        #expect(try w2.translate(gva(0x42)) == gpa(0x42))
    }

    @Test func readBytesAcrossAPageBoundaryUsesBothPhysicalPages() throws {
        let b = try TableBuilder()
        let va: UInt64 = 0xFFFF_C900_0000_0FFC
        let next = va + 4
        // Two consecutive virtual pages mapped to physical pages in reverse order, far apart.
        try b.link(va: va, tables: [pml4, pdpt, pd, pt], frame: 0x20_0000)
        try b.set(table: pt, va: next, level: 1, to: 0x10_5000 | 0x3)
        try b.memory.write([1, 2, 3, 4], at: gpa(0x20_0FFC))
        try b.memory.write([5, 6, 7, 8, 9], at: gpa(0x10_5000))
        try b.memory.write([0xEE, 0xEE], at: gpa(0x20_1000))   // physically contiguous, must not be read

        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0)
        #expect(try walker.readBytes(gva(va), count: 9) == [1, 2, 3, 4, 5, 6, 7, 8, 9])
        #expect(try walker.load64(gva(va)) == 0x0807_0605_0403_0201)
        // Two bytes from the first page, six from the second (the sixth is still zero there).
        #expect(try walker.load64(gva(va + 2)) == 0x0009_0807_0605_0403)
        #expect(try walker.readBytes(gva(va), count: 0) == [])
        #expect(try walker.readBytes(gva(next), count: 2) == [5, 6])
    }

    @Test func readAcrossIntoAnUnmappedPageFails() throws {
        let b = try TableBuilder()
        let va: UInt64 = 0xFFFF_C900_0000_0FFC
        try b.link(va: va, tables: [pml4, pdpt, pd, pt], frame: 0x20_0000)
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0)
        #expect(try walker.readBytes(gva(va), count: 4).count == 4)
        #expect(throws: TranslationError.notPresent(gva(va + 4), level: 1)) { _ = try walker.readBytes(gva(va), count: 5) }
        #expect(throws: TranslationError.notPresent(gva(va + 4), level: 1)) { _ = try walker.load64(gva(va)) }
    }

    @Test func leafOutsideGuestMemoryIsAReadFailure() throws {
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x7000_0000)
        let walker = GuestPageWalker(memory: b.memory, cr3: cr3, cr4: 0)
        #expect(try walker.translate(gva(va4K)) == gpa(0x7000_0ABC))
        #expect(throws: TranslationError.readFailed(gva(va4K))) { _ = try walker.readBytes(gva(va4K), count: 4) }
        #expect(throws: TranslationError.readFailed(gva(va4K))) { _ = try walker.load64(gva(va4K)) }
    }

    @Test func walksTheBootIdentityMap() throws {
        let memory = try GuestMemory(size: 16 << 20)
        try EarlyPageTables.write(into: memory)
        let walker = GuestPageWalker(memory: memory, cr3: BootLayout.pml4.rawValue, cr4: 0x20)
        for address: UInt64 in [0, 0x1234, 0x100_0000, 0xC000_0001, 0xFFFF_FFFF] {
            #expect(try walker.translate(gva(address)) == gpa(address))
        }
        #expect(throws: TranslationError.notPresent(gva(0x1_0000_0000), level: 3)) {
            _ = try walker.translate(gva(0x1_0000_0000))
        }
    }
}
