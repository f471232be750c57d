import AllocationLedger
import AllocationTracing
import Boot
import GuestInterface
import GuestMemory
import Introspection
import LeakAnalysis
import Testing
import X86

/// Builds x86-64 page tables in a small guest memory (8 MiB: RAM is [0, 0x80_0000)).
private struct TableBuilder {
    let memory: GuestMemory
    static let present: UInt64 = 0x1
    static let writable: UInt64 = 0x2
    static let user: UInt64 = 0x4
    static let pageSize: UInt64 = 0x80
    static let noExecute: UInt64 = 1 << 63
    static let all = present | writable | user

    init(size: UInt64 = 8 << 20) throws {
        memory = try GuestMemory(size: size)
    }

    static func index(_ va: UInt64, level: Int) -> UInt64 { (va >> UInt64(12 + 9 * (level - 1))) & 0x1FF }

    /// Guest-physical address of the entry for `va` at `level` in the table at `table`.
    static func entry(_ table: UInt64, _ va: UInt64, level: Int) -> GuestPhysicalAddress {
        GuestPhysicalAddress(table + index(va, level: level) * 8)
    }

    /// Sets the entry for `va` at `level` in the table at `table`.
    func set(table: UInt64, va: UInt64, level: Int, to entry: UInt64) throws {
        try memory.store(entry, at: Self.entry(table, va, level: level))
    }

    /// Links `tables` (the first one at `topLevel`, then one level down each) for `va` and points the
    /// last entry at `frame`: a 4 KiB page when the chain reaches level 1, otherwise the next table.
    func link(va: UInt64, tables: [UInt64], frame: UInt64, topLevel: Int = 4, flags: UInt64 = all) throws {
        for (i, table) in tables.enumerated() {
            let next = i + 1 < tables.count ? tables[i + 1] : frame
            try set(table: table, va: va, level: topLevel - i, to: next | flags)
        }
    }

    func space(cr3: UInt64 = cr3, cr4: UInt64 = 0, cache: TranslationCache? = nil) -> AddressSpace {
        AddressSpace(memory: memory, cr3: cr3, cr4: cr4, cache: cache)
    }
}

private let va4K: UInt64 = 0xFFFF_8880_0020_3ABC   // canonical kernel-half address
private let cr3: UInt64 = 0x1000
private let pml4 = cr3, pdpt: UInt64 = 0x2000, pd: UInt64 = 0x3000, pt: UInt64 = 0x4000, pml5: UInt64 = 0x5000
private let la57: UInt64 = 1 << 12

private func gva(_ v: UInt64) -> GuestVirtualAddress { GuestVirtualAddress(v) }
private func gpa(_ v: UInt64) -> GuestPhysicalAddress { GuestPhysicalAddress(v) }
private func entry(_ table: UInt64, _ va: UInt64, level: Int) -> GuestPhysicalAddress {
    TableBuilder.entry(table, va, level: level)
}

@Suite struct PageWalkerTests {
    @Test func fourLevelFourKiBMapping() throws {
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        let space = b.space(cr4: 0x20)
        #expect(space.mode == .fourLevel)
        #expect(space.root == PageTableRoot(tableAddress: gpa(cr3)))
        let t = try space.translate(gva(va4K))
        #expect(t.virtualAddress == gva(va4K))
        #expect(t.physicalAddress == gpa(0x33_5ABC))
        #expect(t.pageSize == .fourKiB)
        #expect(t.pageBase == gpa(0x33_5000))
        #expect(t.virtualPageBase == gva(va4K & ~0xFFF))
        #expect(t.bytesToPageEnd == 0x1000 - 0xABC)
        #expect(t.permissions == PagePermissions(present: true, writable: true, user: true, noExecute: false))
        #expect(try space.translate(gva(va4K & ~0xFFF)).physicalAddress == gpa(0x33_5000))
        #expect(try space.translate(gva(va4K | 0xFFF)).physicalAddress == gpa(0x33_5FFF))
    }

    @Test func cr3FlagBitsAndHighEntryBitsAreIgnored() throws {
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        // NX (bit 63), protection-key bits and PAT (bit 7 at level 1) are not part of the frame.
        try b.set(table: pt, va: va4K, level: 1, to: 0x8000_0000_0033_5000 | 0x7800_0000_0000_0000 | 0xE7)
        // PCID in bits 0-11, no-flush in bit 63, LAM in bits 61-62.
        let space = b.space(cr3: cr3 | 0x18 | 0xE000_0000_0000_0000)
        #expect(space.root.tableAddress == gpa(cr3))
        let t = try space.translate(gva(va4K))
        #expect(t.physicalAddress == gpa(0x33_5ABC))
        #expect(t.pageSize == .fourKiB)
        #expect(t.permissions.noExecute)
    }

    @Test func twoMiBLargePage() throws {
        let b = try TableBuilder()
        let va: UInt64 = 0xFFFF_FFFF_8123_4567
        try b.link(va: va, tables: [pml4, pdpt], frame: pd)
        // PS set; bit 12 is the PAT bit of a large-page entry, not part of the address.
        try b.set(table: pd, va: va, level: 2, to: 0x2A0_0000 | 0x1000 | TableBuilder.pageSize | 0x3)
        let t = try b.space().translate(gva(va))
        #expect(t.physicalAddress == gpa(0x2A3_4567))
        #expect(t.pageSize == .twoMiB)
        #expect(t.pageBase == gpa(0x2A0_0000))
        #expect(t.virtualPageBase == gva(0xFFFF_FFFF_8120_0000))
        #expect(t.bytesToPageEnd == 0x20_0000 - 0x3_4567)
        #expect(t.permissions == PagePermissions(writable: true, user: false, noExecute: false))
    }

    @Test func oneGiBPagePartlyOutsideRAM() throws {
        // A 1 GiB page at guest-physical 0: only its first 8 MiB are RAM.
        let b = try TableBuilder()
        let base: UInt64 = 0x0000_7F12_4000_0000
        try b.link(va: base, tables: [pml4], frame: pdpt)
        try b.set(table: pdpt, va: base, level: 3, to: 0 | TableBuilder.pageSize | TableBuilder.all)
        let space = b.space()

        let inside = gva(base + 0x12_3456)
        let t = try space.translate(inside)
        #expect(t.physicalAddress == gpa(0x12_3456))
        #expect(t.pageSize == .oneGiB)
        #expect(t.pageBase == gpa(0))
        #expect(t.virtualPageBase == gva(base))
        try b.memory.write([0xAA, 0xBB, 0xCC], at: gpa(0x12_3456))
        #expect(try space.read(inside, count: 3) == [0xAA, 0xBB, 0xCC])

        // Translating beyond RAM works; reading there fails and names both addresses.
        let outside = gva(base + 0x1000_0000)
        #expect(try space.translate(outside).physicalAddress == gpa(0x1000_0000))
        #expect(throws: AddressSpaceError.physicalOutsideMemory(outside, physical: gpa(0x1000_0000), length: 4)) {
            _ = try space.read(outside, count: 4)
        }
        #expect(throws: AddressSpaceError.physicalOutsideMemory(outside, physical: gpa(0x1000_0000), length: 8)) {
            _ = try space.load(UInt64.self, at: outside)
        }
        // A read running off the end of RAM inside the huge page names the first byte outside.
        let edge = gva(base + 0x80_0000 - 4)
        #expect(try space.read(edge, count: 4).count == 4)
        #expect(throws: AddressSpaceError.physicalOutsideMemory(gva(base + 0x80_0000), physical: gpa(0x80_0000), length: 4)) {
            _ = try space.read(edge, count: 8)
        }
    }

    @Test func oneGiBPageAboveFourGiB() throws {
        let b = try TableBuilder()
        let va: UInt64 = 0x0000_7F12_3456_789A
        try b.link(va: va, tables: [pml4], frame: pdpt)
        // Bits 12 (PAT) and 13-29 (reserved) of a 1 GiB entry are not address bits.
        try b.set(table: pdpt, va: va, level: 3, to: 0x1_4000_0000 | 0x3FFF_F000 | TableBuilder.pageSize | 0x3)
        let t = try b.space().translate(gva(va))
        #expect(t.physicalAddress == gpa(0x1_4000_0000 | (va & 0x3FFF_FFFF)))
        #expect(t.pageBase == gpa(0x1_4000_0000))
    }

    @Test func fiveLevelPaging() throws {
        let b = try TableBuilder()
        let va: UInt64 = 0x00AB_CDEF_1234_5678   // bits 56..48 non-zero: only canonical with LA57
        try b.link(va: va, tables: [pml5, pml4, pdpt, pd, pt], frame: 0x20_0000, topLevel: 5)
        let space = b.space(cr3: pml5, cr4: la57)
        #expect(space.mode == .fiveLevel)
        let t = try space.translate(gva(va))
        #expect(t.physicalAddress == gpa(0x20_0678))
        #expect(t.pageSize == .fourKiB)

        // A 2 MiB page under five levels.
        let huge: UInt64 = 0xFF12_3456_789A_BCDE
        try b.link(va: huge, tables: [pml5, 0x6000, 0x7000], frame: 0x8000, topLevel: 5)
        try b.set(table: 0x8000, va: huge, level: 2, to: 0x60_0000 | TableBuilder.pageSize | TableBuilder.all)
        #expect(try space.translate(gva(huge)).physicalAddress == gpa(0x60_0000 | (huge & 0x1F_FFFF)))

        let fourLevel = b.space(cr3: pml5)
        #expect(throws: TranslationError.nonCanonical(gva(va), mode: .fourLevel)) { _ = try fourLevel.translate(gva(va)) }
    }

    @Test(arguments: [0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0x0001_0000_0000_0000] as [UInt64])
    func nonCanonicalWithFourLevels(_ va: UInt64) throws {
        let space = try TableBuilder().space()
        #expect(!gva(va).isCanonical(in: .fourLevel))
        #expect(throws: TranslationError.nonCanonical(gva(va), mode: .fourLevel)) { _ = try space.translate(gva(va)) }
        #expect(throws: AddressSpaceError.translationFailed(.nonCanonical(gva(va), mode: .fourLevel))) {
            _ = try space.read(gva(va), count: 1)
        }
    }

    @Test(arguments: [0x0100_0000_0000_0000, 0xFEFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000] as [UInt64])
    func nonCanonicalWithFiveLevels(_ va: UInt64) throws {
        let space = try TableBuilder().space(cr3: pml5, cr4: la57)
        #expect(throws: TranslationError.nonCanonical(gva(va), mode: .fiveLevel)) { _ = try space.translate(gva(va)) }
    }

    @Test func canonicalEdgesAreWalked() throws {
        let b = try TableBuilder()
        let four = b.space()
        for va: UInt64 in [0x0000_7FFF_FFFF_FFFF, 0xFFFF_8000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF] {
            #expect(throws: TranslationError.notPresent(gva(va), level: 4, entryAddress: entry(pml4, va, level: 4))) {
                _ = try four.translate(gva(va))
            }
        }
        let five = b.space(cr3: pml5, cr4: la57)
        for va: UInt64 in [0x0000_8000_0000_0000, 0x00FF_FFFF_FFFF_FFFF, 0xFF00_0000_0000_0000] {
            #expect(throws: TranslationError.notPresent(gva(va), level: 5, entryAddress: entry(pml5, va, level: 5))) {
                _ = try five.translate(gva(va))
            }
        }
    }

    @Test(arguments: [4, 3, 2, 1])
    func notPresentAtEachLevel(level: Int) throws {
        let b = try TableBuilder()
        let tables = [pml4, pdpt, pd, pt]
        try b.link(va: va4K, tables: tables, frame: 0x33_5000)
        // Clear only the present bit at `level`, leaving the address and other bits in place.
        let table = tables[4 - level]
        try b.set(table: table, va: va4K, level: level, to: (level == 1 ? 0x33_5000 : tables[5 - level]) | 0x6)
        let expected = TranslationError.notPresent(gva(va4K), level: level, entryAddress: entry(table, va4K, level: level))
        let space = b.space()
        #expect(throws: expected) { _ = try space.translate(gva(va4K)) }
        #expect(throws: AddressSpaceError.translationFailed(expected)) { _ = try space.load(UInt32.self, at: gva(va4K)) }
        #expect(try space.permissions(at: gva(va4K)) == .notPresent)
    }

    @Test func notPresentAtLevelFive() throws {
        let space = try TableBuilder().space(cr3: pml5, cr4: la57)
        #expect(throws: TranslationError.notPresent(gva(va4K), level: 5, entryAddress: entry(pml5, va4K, level: 5))) {
            _ = try space.translate(gva(va4K))
        }
    }

    @Test func rootOutsideGuestMemory() throws {
        let b = try TableBuilder()
        #expect(throws: TranslationError.rootOutsideMemory(gva(va4K), root: gpa(0x8000_0000))) {
            _ = try b.space(cr3: 0x8000_0000).translate(gva(va4K))
        }
        #expect(throws: TranslationError.rootOutsideMemory(gva(va4K), root: gpa(0xF_FFFF_FFFF_F000))) {
            _ = try b.space(cr3: ~0, cr4: la57).translate(gva(va4K))
        }
    }

    @Test(arguments: [4, 3, 2])
    func tablePointerOutsideGuestMemory(level: Int) throws {
        let b = try TableBuilder()
        let tables = [pml4, pdpt, pd, pt]
        try b.link(va: va4K, tables: tables, frame: 0x33_5000)
        // The entry at `level` points to a next table beyond RAM (in the MMIO gap, then far above).
        for wild: UInt64 in [0x8000_0000, 0x40_0000_0000, 0xF_FFFF_FFFF_F000] {
            let table = tables[4 - level]
            try b.set(table: table, va: va4K, level: level, to: wild | 0x3)
            #expect(throws: TranslationError.tableOutsideMemory(gva(va4K), level: level, entryAddress: entry(table, va4K, level: level),
                                                                table: gpa(wild))) {
                _ = try b.space().translate(gva(va4K))
            }
        }
    }

    @Test func tablePointerOutsideGuestMemoryAtLevelFive() throws {
        let b = try TableBuilder()
        try b.set(table: pml5, va: va4K, level: 5, to: 0x9000_0000 | 0x3)
        #expect(throws: TranslationError.tableOutsideMemory(gva(va4K), level: 5, entryAddress: entry(pml5, va4K, level: 5),
                                                            table: gpa(0x9000_0000))) {
            _ = try b.space(cr3: pml5, cr4: la57).translate(gva(va4K))
        }
    }

    @Test func pageSizeBitIsReservedAtLevelsFourAndFive() throws {
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        try b.set(table: pml4, va: va4K, level: 4, to: pdpt | TableBuilder.pageSize | 0x3)
        #expect(throws: TranslationError.reservedPageSize(gva(va4K), level: 4, entryAddress: entry(pml4, va4K, level: 4))) {
            _ = try b.space().translate(gva(va4K))
        }
        try b.set(table: pml5, va: va4K, level: 5, to: pml4 | TableBuilder.pageSize | 0x3)
        #expect(throws: TranslationError.reservedPageSize(gva(va4K), level: 5, entryAddress: entry(pml5, va4K, level: 5))) {
            _ = try b.space(cr3: pml5, cr4: la57).translate(gva(va4K))
        }
        // A not-present entry is reported as such even with PS set.
        try b.set(table: pml4, va: va4K, level: 4, to: pdpt | TableBuilder.pageSize)
        #expect(throws: TranslationError.notPresent(gva(va4K), level: 4, entryAddress: entry(pml4, va4K, level: 4))) {
            _ = try b.space().translate(gva(va4K))
        }
    }

    @Test func recursivePML4Slot() throws {
        // PML4[510] points at the PML4 itself, as in the classic recursive mapping. Each pass
        // through the slot drops one level, so fixed addresses expose the tables themselves.
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        try b.set(table: pml4, va: 510 << 39, level: 4, to: pml4 | 0x3)
        let space = b.space()
        func recursive(_ i4: UInt64, _ i3: UInt64, _ i2: UInt64, _ i1: UInt64) -> GuestVirtualAddress {
            gva(0xFFFF_0000_0000_0000 | i4 << 39 | i3 << 30 | i2 << 21 | i1 << 12)
        }
        let i = (1...4).map { TableBuilder.index(va4K, level: $0) }   // i[0] = PT index ... i[3] = PML4 index
        // (510, i4, i3, i2) maps the PT that maps va4K; its entry i1 is the PTE.
        let ptView = recursive(510, i[3], i[2], i[1])
        #expect(try space.translate(ptView).physicalAddress == gpa(pt))
        #expect(try space.load(UInt64.self, at: ptView.advanced(by: Int(i[0]) * 8)) == 0x33_5000 | TableBuilder.all)
        // (510, 510, 510, 510) maps the PML4 page, and reads its own recursive entry.
        let pml4View = recursive(510, 510, 510, 510)
        #expect(try space.translate(pml4View).physicalAddress == gpa(pml4))
        #expect(try space.load(UInt64.self, at: pml4View.advanced(by: 510 * 8)) == pml4 | 0x3)
        // Supervisor-only because the slot is.
        #expect(try space.permissions(at: pml4View) == PagePermissions(writable: true, user: false, noExecute: false))
        // The ordinary mapping is unaffected.
        #expect(try space.translate(gva(va4K)).physicalAddress == gpa(0x33_5ABC))
    }

    @Test func selfLoopsTerminate() throws {
        // PML4[0] points at the PML4: every level reads the same entry; the walk ends with the PML4 page.
        let b = try TableBuilder()
        try b.set(table: pml4, va: 0, level: 4, to: pml4 | 0x3)
        let space = b.space()
        #expect(try space.translate(gva(0x123)).physicalAddress == gpa(pml4 + 0x123))
        #expect(try space.load(UInt64.self, at: gva(0)) == pml4 | 0x3)

        // The loop at the PDPT: PS clear walks it again as PD and PT; PS set makes it a 1 GiB page.
        let b2 = try TableBuilder()
        try b2.set(table: pml4, va: 0, level: 4, to: pdpt | 0x3)
        try b2.set(table: pdpt, va: 0, level: 3, to: pdpt | 0x3)
        #expect(try b2.space().translate(gva(0x42)).physicalAddress == gpa(pdpt + 0x42))
        try b2.set(table: pdpt, va: 0, level: 3, to: pdpt | TableBuilder.pageSize | 0x3)
        let huge = try b2.space().translate(gva(0x42))
        #expect(huge.physicalAddress == gpa(0x42))
        #expect(huge.pageSize == .oneGiB)

        // Five levels with a self-referencing PML5 entry.
        let b3 = try TableBuilder()
        try b3.set(table: pml5, va: 0, level: 5, to: pml5 | 0x3)
        #expect(try b3.space(cr3: pml5, cr4: la57).translate(gva(0x7)).physicalAddress == gpa(pml5 + 0x7))
    }

    @Test func patBitAtLevelOneIsNotPageSize() throws {
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        try b.set(table: pt, va: va4K, level: 1, to: 0x33_5000 | TableBuilder.pageSize | 0x3)
        let t = try b.space().translate(gva(va4K))
        #expect(t.pageSize == .fourKiB)
        #expect(t.physicalAddress == gpa(0x33_5ABC))
    }

    @Test func permissionsAreCombinedOverAllLevels() throws {
        let b = try TableBuilder()
        let tables = [pml4, pdpt, pd, pt]
        try b.link(va: va4K, tables: tables, frame: 0x33_5000)
        let space = b.space()
        #expect(try space.permissions(at: gva(va4K)) == PagePermissions(writable: true, user: true, noExecute: false))

        // A user PTE under a supervisor PDE is not user.
        try b.set(table: pd, va: va4K, level: 2, to: pt | 0x3)
        #expect(try space.permissions(at: gva(va4K)) == PagePermissions(writable: true, user: false, noExecute: false))
        try b.link(va: va4K, tables: tables, frame: 0x33_5000)

        // NX at any level makes the page no-execute.
        for level in 1...4 {
            try b.link(va: va4K, tables: tables, frame: 0x33_5000)
            let next = level == 1 ? 0x33_5000 : tables[5 - level]
            try b.set(table: tables[4 - level], va: va4K, level: level, to: next | TableBuilder.all | TableBuilder.noExecute)
            let p = try space.translate(gva(va4K)).permissions
            #expect(p == PagePermissions(writable: true, user: true, noExecute: true), "NX at level \(level)")
        }

        // R/W clear at one level makes it read-only.
        for level in 1...4 {
            try b.link(va: va4K, tables: tables, frame: 0x33_5000)
            let next = level == 1 ? 0x33_5000 : tables[5 - level]
            try b.set(table: tables[4 - level], va: va4K, level: level, to: next | 0x5)
            let p = try space.translate(gva(va4K)).permissions
            #expect(p == PagePermissions(writable: false, user: true, noExecute: false), "read-only at level \(level)")
        }

        // Huge pages combine their upper levels too.
        let huge: UInt64 = 0x0000_0040_0060_0000
        try b.link(va: huge, tables: [pml4, 0x6000], frame: 0x7000, flags: TableBuilder.present | TableBuilder.user | TableBuilder.noExecute)
        try b.set(table: 0x7000, va: huge, level: 2, to: 0x40_0000 | TableBuilder.pageSize | TableBuilder.all)
        #expect(try space.permissions(at: gva(huge + 0x1234)) == PagePermissions(writable: false, user: true, noExecute: true))
    }

    @Test func permissionsQueryStillReportsMalformedTables() throws {
        let b = try TableBuilder()
        #expect(throws: TranslationError.nonCanonical(gva(0x0000_8000_0000_0000), mode: .fourLevel)) {
            _ = try b.space().permissions(at: gva(0x0000_8000_0000_0000))
        }
        #expect(throws: TranslationError.rootOutsideMemory(gva(va4K), root: gpa(0x8000_0000))) {
            _ = try b.space(cr3: 0x8000_0000).permissions(at: gva(va4K))
        }
        #expect(PagePermissions.notPresent.description == "not present")
        #expect(PagePermissions(writable: false, user: true, noExecute: true).description == "ur--")
    }

    @Test func walksTheBootIdentityMap() throws {
        let memory = try GuestMemory(size: 16 << 20)
        try EarlyPageTables.write(into: memory)
        let space = AddressSpace(memory: memory, cr3: BootLayout.pml4.rawValue, cr4: 0x20)
        for address: UInt64 in [0, 0x1234, 0x100_0000, 0xC000_0001, 0xFFFF_FFFF] {
            let t = try space.translate(gva(address))
            #expect(t.physicalAddress == gpa(address))
            #expect(t.pageSize == .twoMiB)
        }
        #expect(throws: TranslationError.notPresent(gva(0x1_0000_0000), level: 3,
                                                    entryAddress: gpa(try pdptOfBootMap(memory) + 4 * 8))) {
            _ = try space.translate(gva(0x1_0000_0000))
        }
    }

    private func pdptOfBootMap(_ memory: GuestMemory) throws -> UInt64 {
        try memory.load(UInt64.self, at: BootLayout.pml4) & 0x000F_FFFF_FFFF_F000
    }

    @Test func errorDescriptionsNameTheTableAndAddresses() {
        let e = TranslationError.tableOutsideMemory(gva(0xFFFF_8000_0000_1000), level: 2, entryAddress: gpa(0x3008), table: gpa(0x9000_0000))
        #expect(e.description == "translating gva 0xffff800000001000: PD entry at gpa 0x3008 points to a table at gpa 0x90000000 outside guest RAM")
        #expect(TranslationError.notPresent(gva(0x10), level: 5, entryAddress: gpa(0x5000)).description
                == "gva 0x10 is not mapped: PML5 entry at gpa 0x5000 is not present")
        #expect(TranslationError.reservedPageSize(gva(0x10), level: 4, entryAddress: gpa(0x1000)).description.contains("PML4 entry at gpa 0x1000"))
        #expect(TranslationError.nonCanonical(gva(1 << 47), mode: .fourLevel).description == "gva 0x800000000000 is not canonical with 4-level paging")
        #expect(AddressSpaceError.physicalOutsideMemory(gva(0x2000), physical: gpa(0x9000_0000), length: 8).description
                == "gva 0x2000 maps to [gpa 0x90000000, +8), which is outside guest RAM")
        #expect(AddressSpaceError.translationFailed(.rootOutsideMemory(gva(4), root: gpa(0x1000))).virtualAddress == gva(4))
    }
}

@Suite struct AddressSpaceTests {
    /// Two consecutive virtual pages mapped to physical pages in reverse order, far apart.
    private func twoPages() throws -> (TableBuilder, va: UInt64) {
        let b = try TableBuilder()
        let va: UInt64 = 0xFFFF_C900_0000_0FFC
        try b.link(va: va, tables: [pml4, pdpt, pd, pt], frame: 0x20_0000)
        try b.set(table: pt, va: va + 4, level: 1, to: 0x10_5000 | 0x3)
        try b.memory.write([1, 2, 3, 4], at: gpa(0x20_0FFC))
        try b.memory.write([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], at: gpa(0x10_5000))
        try b.memory.write([0xEE, 0xEE], at: gpa(0x20_1000))   // physically contiguous, must not be read
        return (b, va)
    }

    @Test func readAcrossAPageBoundaryUsesBothPhysicalPages() throws {
        let (b, va) = try twoPages()
        let space = b.space()
        #expect(try space.read(gva(va), count: 9) == [1, 2, 3, 4, 5, 6, 7, 8, 9])
        #expect(try space.read(gva(va), count: 0) == [])
        #expect(try space.read(gva(va + 4), count: 2) == [5, 6])
    }

    @Test func loadIsLittleEndianAndMaySpanPages() throws {
        let (b, va) = try twoPages()
        let space = b.space()
        #expect(try space.load(UInt64.self, at: gva(va)) == 0x0807_0605_0403_0201)
        #expect(try space.load(UInt64.self, at: gva(va + 2)) == 0x0A09_0807_0605_0403)
        #expect(try space.load(UInt32.self, at: gva(va)) == 0x0403_0201)
        #expect(try space.load(UInt32.self, at: gva(va + 1)) == 0x0504_0302)
        #expect(try space.load(UInt16.self, at: gva(va + 3)) == 0x0504)
        #expect(try space.load(UInt8.self, at: gva(va + 4)) == 5)
        #expect(try space.load(Int16.self, at: gva(va + 3)) == 0x0504)
        try b.memory.write([0xFE, 0xFF], at: gpa(0x20_0FFE))
        #expect(try space.load(Int32.self, at: gva(va + 2)) == Int32(bitPattern: 0x0605_FFFE))
        #expect(try space.load(Int16.self, at: gva(va + 2)) == -2)
    }

    @Test func failureInTheSecondPageNamesThatPage() throws {
        let b = try TableBuilder()
        let va: UInt64 = 0xFFFF_C900_0000_0FFC
        try b.link(va: va, tables: [pml4, pdpt, pd, pt], frame: 0x20_0000)
        let space = b.space()
        let second = TranslationError.notPresent(gva(va + 4), level: 1, entryAddress: entry(pt, va + 4, level: 1))
        #expect(try space.read(gva(va), count: 4).count == 4)
        #expect(throws: AddressSpaceError.translationFailed(second)) { _ = try space.read(gva(va), count: 5) }
        #expect(throws: AddressSpaceError.translationFailed(second)) { _ = try space.load(UInt64.self, at: gva(va)) }
        #expect(throws: AddressSpaceError.translationFailed(second)) { _ = try space.readWords(at: gva(va - 4), count: 2) }

        // The second page maps outside RAM.
        try b.set(table: pt, va: va + 4, level: 1, to: 0x7000_0000 | 0x3)
        #expect(throws: AddressSpaceError.physicalOutsideMemory(gva(va + 4), physical: gpa(0x7000_0000), length: 1)) {
            _ = try space.read(gva(va), count: 5)
        }
    }

    @Test func leafOutsideGuestMemoryIsAReadFailure() throws {
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x7000_0000)
        let space = b.space()
        #expect(try space.translate(gva(va4K)).physicalAddress == gpa(0x7000_0ABC))
        #expect(throws: AddressSpaceError.physicalOutsideMemory(gva(va4K), physical: gpa(0x7000_0ABC), length: 4)) {
            _ = try space.read(gva(va4K), count: 4)
        }
        #expect(throws: AddressSpaceError.physicalOutsideMemory(gva(va4K), physical: gpa(0x7000_0ABC), length: 8)) {
            _ = try space.load(UInt64.self, at: gva(va4K))
        }
    }

    @Test func readWordsInBulk() throws {
        let (b, va) = try twoPages()
        let space = b.space()
        #expect(try space.readWords(at: gva(va), count: 2) == [0x0807_0605_0403_0201, 0x100F_0E0D_0C0B_0A09])
        #expect(try space.readWords(at: gva(va + 1), count: 1) == [0x0908_0706_0504_0302])
        #expect(try space.readWords(at: gva(va), count: 0) == [])
    }

    @Test func readSizeIsBounded() throws {
        let (b, va) = try twoPages()
        let space = AddressSpace(memory: b.memory, root: PageTableRoot(cr3: cr3), mode: .fourLevel, maximumReadSize: 4096)
        #expect(space.maximumReadSize == 4096)
        #expect(try space.read(gva(va), count: 4).count == 4)
        #expect(throws: AddressSpaceError.lengthOutOfRange(gva(va), length: 4097, limit: 4096)) { _ = try space.read(gva(va), count: 4097) }
        #expect(throws: AddressSpaceError.lengthOutOfRange(gva(va), length: -1, limit: 4096)) { _ = try space.read(gva(va), count: -1) }
        #expect(throws: AddressSpaceError.lengthOutOfRange(gva(va), length: 4104, limit: 4096)) { _ = try space.readWords(at: gva(va), count: 513) }
        #expect(throws: AddressSpaceError.lengthOutOfRange(gva(va), length: Int.max, limit: 4096)) {
            _ = try space.readWords(at: gva(va), count: Int.max / 4)
        }
        #expect(throws: AddressSpaceError.lengthOutOfRange(gva(va), length: -8, limit: 4096)) { _ = try space.readWords(at: gva(va), count: -1) }
        #expect(throws: AddressSpaceError.lengthOutOfRange(gva(va), length: 1 << 40, limit: 4096)) {
            _ = try space.readCString(at: gva(va), maxLength: 1 << 40)
        }
        // The default allows 16 MiB and refuses a guest-supplied gigabyte before touching memory.
        let big = b.space()
        #expect(big.maximumReadSize == 16 << 20)
        #expect(throws: AddressSpaceError.lengthOutOfRange(gva(va), length: 1 << 30, limit: 16 << 20)) { _ = try big.read(gva(va), count: 1 << 30) }
    }

    @Test func readPastTheTopOfTheAddressSpaceIsRefused() throws {
        let b = try TableBuilder()
        let top: UInt64 = 0xFFFF_FFFF_FFFF_FFFC
        try b.link(va: top, tables: [pml4, pdpt, pd, pt], frame: 0x20_0000)
        try b.memory.write(Array("ab".utf8), at: gpa(0x20_0FFC))
        let space = b.space()
        #expect(try space.read(gva(top), count: 4).count == 4)
        #expect(throws: AddressSpaceError.rangeWrapsAround(gva(top), length: 5)) { _ = try space.read(gva(top), count: 5) }
        #expect(throws: AddressSpaceError.rangeWrapsAround(gva(top), length: 8)) { _ = try space.load(UInt64.self, at: gva(top)) }
        // A C string stops at the top instead.
        #expect(try space.readCString(at: gva(top), maxLength: 64) == "ab")
        try b.memory.write(Array("abcd".utf8), at: gpa(0x20_0FFC))
        #expect(try space.readCString(at: gva(top), maxLength: 64) == "abcd")
    }

    @Test func readCStringStopsAtNulOrTheLimit() throws {
        let b = try TableBuilder()
        let va: UInt64 = 0xFFFF_C900_0000_0FF8
        try b.link(va: va, tables: [pml4, pdpt, pd, pt], frame: 0x20_0000)
        let space = b.space()
        try b.memory.write(Array("hello\0xy".utf8), at: gpa(0x20_0FF8))
        #expect(try space.readCString(at: gva(va), maxLength: 64) == "hello")   // NUL ends it; next page unmapped
        #expect(try space.readCString(at: gva(va), maxLength: 5) == "hello")
        #expect(try space.readCString(at: gva(va), maxLength: 3) == "hel")
        #expect(try space.readCString(at: gva(va), maxLength: 0) == "")
        #expect(try space.readCString(at: gva(va + 5), maxLength: 8) == "")

        // No NUL before the end of the mapped page: the unmapped next page is an error ...
        try b.memory.write(Array("abcdefgh".utf8), at: gpa(0x20_0FF8))
        let next = TranslationError.notPresent(gva(va + 8), level: 1, entryAddress: entry(pt, va + 8, level: 1))
        #expect(throws: AddressSpaceError.translationFailed(next)) { _ = try space.readCString(at: gva(va), maxLength: 9) }
        // ... unless the limit ends the string first.
        #expect(try space.readCString(at: gva(va), maxLength: 8) == "abcdefgh")

        // Strings continue across mapped pages, and invalid UTF-8 is replaced, not trusted.
        try b.set(table: pt, va: va + 8, level: 1, to: 0x10_5000 | 0x3)
        try b.memory.write(Array("ijk\0".utf8), at: gpa(0x10_5000))
        #expect(try space.readCString(at: gva(va), maxLength: 100) == "abcdefghijk")
        try b.memory.write([0xFF, 0x41, 0], at: gpa(0x10_5000))
        #expect(try space.readCString(at: gva(va + 8), maxLength: 100) == "\u{FFFD}A")

        // Unmapped start.
        let unmapped = gva(0xFFFF_C900_1000_0000)
        #expect(throws: AddressSpaceError.translationFailed(.notPresent(unmapped, level: 2, entryAddress: entry(pd, unmapped.rawValue, level: 2)))) {
            _ = try space.readCString(at: unmapped, maxLength: 16)
        }
    }

    @Test func virtualAddressHelpers() {
        let va = gva(0xFFFF_8880_0020_3ABC)
        #expect(va.pageBase == gva(0xFFFF_8880_0020_3000))
        #expect(va.pageOffset == 0xABC)
        #expect(va.pageBase(for: .twoMiB) == gva(0xFFFF_8880_0020_0000))
        #expect(va.pageOffset(for: .oneGiB) == 0x20_3ABC)
        #expect(va.isKernelHalf)
        #expect(!gva(0x7FFF_FFFF_F000).isKernelHalf)
        #expect(va.isCanonical(in: .fourLevel) && va.isCanonical(in: .fiveLevel))
        #expect(!gva(0x00AB_CDEF_1234_5678).isCanonical(in: .fourLevel))
        #expect(gva(0x00AB_CDEF_1234_5678).isCanonical(in: .fiveLevel))
        #expect(va.advanced(by: 0x544) == gva(0xFFFF_8880_0020_4000))
        #expect(va.advanced(by: -0xABC) == va.pageBase)
        #expect(gva(0xFFFF_FFFF_FFFF_FFFF).advanced(by: 1) == gva(0))
        #expect(gva(0xFFFF_FFFF_FFFF_FFFF).adding(1) == nil)
        #expect(gva(1).adding(2) == gva(3))
        #expect(gva(1) < gva(2))
        #expect(va.description == "gva 0xffff888000203abc")
        #expect(PageTableMode(cr4: la57 | 0x20) == .fiveLevel && PageTableMode(cr4: 0x20) == .fourLevel)
        #expect(PageSize(leafLevel: 4) == nil && PageSize(leafLevel: 2) == .twoMiB && PageSize.oneGiB.leafLevel == 3)
    }
}

@Suite struct TranslationCacheTests {
    @Test func changedPTEIsSeenAfterInvalidation() throws {
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        try b.memory.write([0x11], at: gpa(0x33_5ABC))
        try b.memory.write([0x22], at: gpa(0x44_4ABC))
        let cache = TranslationCache()
        let space = b.space(cache: cache)
        #expect(try space.translate(gva(va4K)).physicalAddress == gpa(0x33_5ABC))
        #expect(cache.count == 1)

        // The guest remaps the page (as if it had run). Without invalidation the cache still
        // answers with the old frame: that is the documented rule, not a bug.
        try b.set(table: pt, va: va4K, level: 1, to: 0x44_4000 | 0x3)
        #expect(try space.read(gva(va4K), count: 1) == [0x11])
        cache.invalidateAll()
        #expect(cache.count == 0)
        #expect(try space.read(gva(va4K), count: 1) == [0x22])
        let t = try space.translate(gva(va4K))
        #expect(t.physicalAddress == gpa(0x44_4ABC))
        #expect(t.permissions == PagePermissions(writable: true, user: false, noExecute: false))

        // Unmapping is seen too.
        try b.set(table: pt, va: va4K, level: 1, to: 0)
        cache.invalidateAll()
        #expect(throws: TranslationError.notPresent(gva(va4K), level: 1, entryAddress: entry(pt, va4K, level: 1))) {
            _ = try space.translate(gva(va4K))
        }
    }

    @Test func failuresAreNotCached() throws {
        let b = try TableBuilder()
        let cache = TranslationCache()
        let space = b.space(cache: cache)
        #expect(throws: TranslationError.self) { _ = try space.translate(gva(va4K)) }
        #expect(cache.count == 0)
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        #expect(try space.translate(gva(va4K)).physicalAddress == gpa(0x33_5ABC))
    }

    @Test(arguments: [PageSize.twoMiB, .oneGiB])
    func hugePageEntryServesEveryAddressInside(_ size: PageSize) throws {
        let b = try TableBuilder()
        let base: UInt64 = 0xFFFF_8880_0000_0000
        let frame: UInt64 = size == .twoMiB ? 0x40_0000 : 0x1_4000_0000
        let tables = size == .twoMiB ? [pml4, pdpt] : [pml4]
        try b.link(va: base, tables: tables, frame: tables.count == 2 ? pd : pdpt)
        try b.set(table: size == .twoMiB ? pd : pdpt, va: base, level: size.leafLevel,
                  to: frame | TableBuilder.pageSize | TableBuilder.present | TableBuilder.noExecute)
        let cache = TranslationCache()
        let space = b.space(cache: cache)
        let first = try space.translate(gva(base + 0x1234))
        #expect(first.pageSize == size)
        #expect(cache.count == 1)
        #expect(cache.statistics == TranslationCache.Statistics(hits: 0, misses: 1, evictions: 0))

        // Remove the mapping: from here on only the cache can answer.
        try b.set(table: pml4, va: base, level: 4, to: 0)
        let offsets: [UInt64] = [0, 0x1234, 0xFFF, 0x1000, size.bytes / 2 + 0x77, size.bytes - 1]
        for offset in offsets {
            let t = try space.translate(gva(base + offset))
            #expect(t.virtualAddress == gva(base + offset))
            #expect(t.physicalAddress == gpa(frame + offset))
            #expect(t.pageBase == gpa(frame))
            #expect(t.pageSize == size)
            #expect(t.permissions == PagePermissions(writable: false, user: false, noExecute: true))
        }
        #expect(cache.count == 1)
        #expect(cache.statistics.hits == offsets.count)
        // Just past the huge page is a different page: walked, and not present now.
        #expect(throws: TranslationError.notPresent(gva(base + size.bytes), level: 4, entryAddress: entry(pml4, base, level: 4))) {
            _ = try space.translate(gva(base + size.bytes))
        }
        cache.invalidateAll()
        #expect(throws: TranslationError.notPresent(gva(base), level: 4, entryAddress: entry(pml4, base, level: 4))) {
            _ = try space.translate(gva(base))
        }
    }

    @Test func invalidateByRootKeepsOtherAddressSpaces() throws {
        let b = try TableBuilder()
        let otherRoot: UInt64 = 0x9000
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        try b.set(table: otherRoot, va: va4K, level: 4, to: pdpt | 0x3)    // shares the lower tables
        let cache = TranslationCache()
        let a = b.space(cr3: pml4, cache: cache)
        let other = b.space(cr3: otherRoot | 0x5, cache: cache)            // PCID bits: same root
        #expect(try a.translate(gva(va4K)).physicalAddress == gpa(0x33_5ABC))
        #expect(try other.translate(gva(va4K)).physicalAddress == gpa(0x33_5ABC))
        #expect(cache.count == 2)

        try b.set(table: pt, va: va4K, level: 1, to: 0x44_4000 | 0x3)
        cache.invalidate(root: PageTableRoot(cr3: otherRoot))
        #expect(cache.count == 1)
        #expect(try other.translate(gva(va4K)).physicalAddress == gpa(0x44_4ABC))
        #expect(try a.translate(gva(va4K)).physicalAddress == gpa(0x33_5ABC))   // still cached
        cache.invalidate(root: PageTableRoot(cr3: pml4))
        #expect(try a.translate(gva(va4K)).physicalAddress == gpa(0x44_4ABC))
    }

    @Test func pagingModeIsPartOfTheKey() throws {
        let b = try TableBuilder()
        // The same table read as a PML5 (LA57) and as a PML4 gives different translations.
        try b.link(va: 0, tables: [0x6000, 0x7000, 0x8000, 0x9000, 0xA000], frame: 0x50_0000, topLevel: 5)
        let cache = TranslationCache()
        let five = b.space(cr3: 0x6000, cr4: la57, cache: cache)
        let four = b.space(cr3: 0x6000, cache: cache)
        #expect(try five.translate(gva(0x10)).physicalAddress == gpa(0x50_0010))
        #expect(try four.translate(gva(0x10)).physicalAddress == gpa(0xA010))
        #expect(cache.count == 2)
    }

    @Test func synchronizeDropsEntriesFromAnEarlierEpoch() throws {
        let b = try TableBuilder()
        try b.link(va: va4K, tables: [pml4, pdpt, pd, pt], frame: 0x33_5000)
        let cache = TranslationCache()
        let space = b.space(cache: cache)
        cache.synchronize(epoch: 7)
        _ = try space.translate(gva(va4K))
        cache.synchronize(epoch: 7)                   // same pause: kept
        #expect(cache.count == 1)
        try b.set(table: pt, va: va4K, level: 1, to: 0x44_4000 | 0x3)
        cache.synchronize(epoch: 8)                   // the guest ran: dropped
        #expect(cache.count == 0)
        #expect(cache.epoch == 8)
        #expect(try space.translate(gva(va4K)).physicalAddress == gpa(0x44_4ABC))
    }

    @Test func cacheIsBoundedAndEvictsTheOldest() throws {
        let b = try TableBuilder()
        let base: UInt64 = 0xFFFF_C900_0000_0000
        try b.link(va: base, tables: [pml4, pdpt, pd], frame: pt)
        for page in 0..<8 as Range<UInt64> {
            try b.set(table: pt, va: base + page * 0x1000, level: 1, to: (0x30_0000 + page * 0x1000) | 0x3)
        }
        let cache = TranslationCache(capacity: 4)
        let space = b.space(cache: cache)
        for page in 0..<6 as Range<UInt64> { _ = try space.translate(gva(base + page * 0x1000)) }
        #expect(cache.count == 4)
        #expect(cache.statistics == TranslationCache.Statistics(hits: 0, misses: 6, evictions: 2))
        // Pages 2...5 remain; 0 was evicted.
        _ = try space.translate(gva(base + 5 * 0x1000))
        _ = try space.translate(gva(base + 2 * 0x1000))
        #expect(cache.statistics.hits == 2)
        _ = try space.translate(gva(base))
        #expect(cache.statistics.misses == 7)
        #expect(cache.count == 4)

        // After dropping one root's entries the cache fills up again in order.
        cache.invalidate(root: PageTableRoot(cr3: 0xDEAD_0000))   // another root: nothing dropped
        #expect(cache.count == 4)
        cache.invalidate(root: PageTableRoot(cr3: cr3))
        #expect(cache.count == 0)
        for page in 0..<8 as Range<UInt64> { _ = try space.translate(gva(base + page * 0x1000)) }
        #expect(cache.count == 4)
        #expect(try space.read(gva(base + 7 * 0x1000), count: 1) == [0])
    }

    @Test func concurrentUseIsSafe() async throws {
        let b = try TableBuilder()
        let base: UInt64 = 0xFFFF_C900_0000_0000
        try b.link(va: base, tables: [pml4, pdpt, pd], frame: pt)
        for page in 0..<64 as Range<UInt64> {
            try b.set(table: pt, va: base + page * 0x1000, level: 1, to: (0x30_0000 + page * 0x1000) | 0x3)
        }
        let cache = TranslationCache(capacity: 16)
        let space = b.space(cache: cache)
        await withTaskGroup(of: Bool.self) { group in
            for task in 0..<4 as Range<UInt64> {
                group.addTask {
                    (0..<500 as Range<UInt64>).allSatisfy { i in
                        let page = (i * 7 + task) % 64
                        if i % 97 == 0 { cache.invalidateAll() }
                        return (try? space.translate(gva(base + page * 0x1000 + 8)).physicalAddress) == gpa(0x30_0008 + page * 0x1000)
                    }
                }
            }
            for await ok in group { #expect(ok) }
        }
        #expect(cache.count <= 16)
    }
}
