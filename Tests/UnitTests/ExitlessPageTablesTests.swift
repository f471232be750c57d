import GuestMemory
import Testing
import X86

@testable import AllocationTracing

/// The entries the exitless path adds to guest page tables, over crafted tables: what is written
/// where, what is refused, and that taking them away restores exactly what was there.
@Suite struct ExitlessPageTablesTests {
    /// A PGD at 0x1000 whose entry 511 leads (0x2000, entry 511) to a PMD at 0x3000, as Linux's
    /// `level3_kernel_pgt` and `level2_fixmap_pgt` do.
    static func guest() throws -> (GuestMemory, MonitorRegion, PageTableRoot) {
        let memory = try GuestMemory(size: 16 << 20)
        try memory.store(UInt64(0x2000 | 0x63), at: GuestPhysicalAddress(0x1000 + 8 * 511))
        try memory.store(UInt64(0x3000 | 0x63), at: GuestPhysicalAddress(0x2000 + 8 * 511))
        try memory.store(UInt64(0x5000 | 0x63), at: GuestPhysicalAddress(0x3000 + 8 * 510))   // the fixmap's own
        let region = try MonitorRegion(start: GuestPhysicalAddress(1 << 32), size: 4 << 20)
        return (memory, region, PageTableRoot(cr3: 0x1000))
    }

    static func word(_ memory: GuestMemory, _ address: UInt64) throws -> UInt64 {
        try memory.load(UInt64.self, at: GuestPhysicalAddress(address))
    }

    @Test func theCodePageHangsUnderTheSharedTablesAndEachSpaceGetsItsOwnWindow() throws {
        let (memory, region, root) = try Self.guest()
        var tables = ExitlessPageTables()
        try tables.mapCode(pages: 2, root: root, memory: memory, region: region)
        let leaf = try Self.word(memory, 0x3000 + 8 * 511)
        #expect(leaf & 0x7 == 0x7 && region.memory.contains(GuestPhysicalAddress(leaf & ExitlessPageTables.frameMask)))
        #expect(try Self.word(memory, 0x2000 + 8 * 511) == 0x3000 | 0x63 | 4, "U added on the path")
        #expect(try Self.word(memory, 0x1000 + 8 * 511) == 0x2000 | 0x63, "the PGD entry is the space's, granted on first use")
        // The code pages: present, user, read-only, filled with int3.
        let code = try region.memory.load(UInt64.self, at: GuestPhysicalAddress(leaf & ExitlessPageTables.frameMask))
        #expect(code & 0x7 == 0x5)
        #expect(try region.memory.read(at: tables.codePageFrames[0], count: 4) == [0xCC, 0xCC, 0xCC, 0xCC])
        try tables.grantCode(to: root, memory: memory)
        #expect(try Self.word(memory, 0x1000 + 8 * 511) == 0x2000 | 0x63 | 4)
        #expect(tables.codeGranted(to: root))

        try tables.mapWindow(for: root, memory: memory, region: region)
        let window = try Self.word(memory, 0x1000 + 8 * 509)
        #expect(window & 0x7 == 0x7 && region.memory.contains(GuestPhysicalAddress(window & ExitlessPageTables.frameMask)))
        let ring = try #require(tables.windows[root]).pages[3]
        #expect(try region.memory.load(UInt64.self, at: ring) == ExitlessLayout.Header.magicValue)
        // The ring's leaf entries are user, writable and not executable.
        let leafTable = try #require(tables.windows[root]).pages[2]
        let ringEntry = try region.memory.load(UInt64.self, at: leafTable)
        #expect(ringEntry & 0x7 == 0x7 && ringEntry & ExitlessPageTables.noExecute != 0 && ringEntry & ExitlessPageTables.frameMask == ring.rawValue)

        // Taking it away: the space's entries, then the shared ones; every page back in the region.
        tables.unmapAll(memory: memory, region: region)
        #expect(try Self.word(memory, 0x1000 + 8 * 509) == 0)
        #expect(try Self.word(memory, 0x1000 + 8 * 511) == 0x2000 | 0x63)
        #expect(try Self.word(memory, 0x2000 + 8 * 511) == 0x3000 | 0x63)
        #expect(try Self.word(memory, 0x3000 + 8 * 511) == 0)
        #expect(try Self.word(memory, 0x3000 + 8 * 510) == 0x5000 | 0x63)
        #expect(region.pagesInUse == 0)
    }

    @Test func anEntryTheGuestUsesIsNeverWrittenOver() throws {
        let (memory, region, root) = try Self.guest()
        try memory.store(UInt64(0x9000 | 0x63), at: GuestPhysicalAddress(0x3000 + 8 * 511))
        try memory.store(UInt64(0xA000 | 0x67), at: GuestPhysicalAddress(0x1000 + 8 * 509))
        var tables = ExitlessPageTables()
        #expect(throws: ExitlessMappingError.slotInUse(level: "PMD 511 (top 2 MiB)", value: 0x9000 | 0x63)) {
            try tables.mapCode(pages: 1, root: root, memory: memory, region: region)
        }
        #expect(throws: ExitlessMappingError.slotInUse(level: "PGD 509", value: 0xA000 | 0x67)) {
            try tables.mapWindow(for: root, memory: memory, region: region)
        }
        #expect(try Self.word(memory, 0x3000 + 8 * 511) == 0x9000 | 0x63)
        #expect(try Self.word(memory, 0x1000 + 8 * 509) == 0xA000 | 0x67)
        #expect(region.pagesInUse == 0, "nothing kept of a refused mapping")
        // A path through a large page, or out of guest RAM, is no table.
        try memory.store(UInt64(0x2000 | 0xE3), at: GuestPhysicalAddress(0x1000 + 8 * 511))
        #expect(throws: ExitlessMappingError.unexpectedEntry(level: "PGD 511", value: 0x2000 | 0xE3)) {
            try tables.mapCode(pages: 1, root: root, memory: memory, region: region)
        }
        try memory.store(UInt64(0x40_0000_0000 | 0x63), at: GuestPhysicalAddress(0x1000 + 8 * 511))
        #expect(throws: ExitlessMappingError.unexpectedEntry(level: "PGD 511", value: 0x40_0000_0000 | 0x63)) {
            try tables.mapCode(pages: 1, root: root, memory: memory, region: region)
        }
    }

    @Test func aSpaceThatEndsGivesItsPagesBackAndAWordTheGuestChangedIsLeftAlone() throws {
        let (memory, region, root) = try Self.guest()
        var tables = ExitlessPageTables()
        try tables.mapCode(pages: 1, root: root, memory: memory, region: region)
        let codePages = region.pagesInUse
        try tables.mapWindow(for: root, memory: memory, region: region)
        try tables.grantCode(to: root, memory: memory)
        #expect(region.pagesInUse == codePages + 3 + ExitlessLayout.windowPages)
        // The guest rewrote its PGD entry 511 meanwhile: detach must not put the old value back.
        try memory.store(UInt64(0x7000 | 0x67), at: GuestPhysicalAddress(0x1000 + 8 * 511))
        tables.unmap(root, memory: memory, region: region)
        #expect(region.pagesInUse == codePages)
        #expect(try Self.word(memory, 0x1000 + 8 * 509) == 0)
        #expect(try Self.word(memory, 0x1000 + 8 * 511) == 0x7000 | 0x67)
        #expect(tables.windows.isEmpty && !tables.codeGranted(to: root))
    }
}
