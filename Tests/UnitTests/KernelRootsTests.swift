import GuestMemory
@testable import Introspection
import Testing
import X86

/// Kernel roots over the real kernel's symbols and BTF, and over crafted guest memory that lies.
@Suite struct KernelRootsTests {
    @Test func theRealKernelHasTheRootSymbolsAndLayout() throws {
        let kernel = try CraftedKernelMemory.realKernel.get()
        let l = try kernel.layout.roots.get()
        #expect(l.pageSize == 64 && l.pageFlags == 0 && l.pageMapping == 24 && l.pageCompoundHead == 8)
        #expect(l.pageType == 48 && l.pageRefCount == 52 && l.folioOrder == 81)
        #expect(l.areaStart == 0 && l.areaEnd == 8 && l.vmAddress == 8 && l.vmSize == 16 && l.vmFlags == 24)
        for name in ["_sdata", "_edata", "__bss_start", "__bss_stop", "__start_ro_after_init", "__end_ro_after_init",
                     "__per_cpu_offset", "nr_cpu_ids", "__cpu_possible_mask", "pcpu_unit_size", "page_offset_base",
                     "vmemmap_base", "vmap_area_list", "_text", "_end"] {
            #expect(kernel.symbols.address(of: name) != nil, "\(name)")
        }
        #expect(kernel.symbols.perCPUOffset(of: "__per_cpu_end") != nil)
        let sdata = try #require(kernel.symbols.address(of: "_sdata")), edata = try #require(kernel.symbols.address(of: "_edata"))
        #expect(edata > sdata && edata - sdata < 64 << 20)
    }

    @Test func pageTypesAreTellFromMapCounts() {
        #expect(KernelView.hasPageType(0xFFFF_FF7F))  // PG_buddy
        #expect(KernelView.hasPageType(0xFFFF_FDFF))  // PG_table
        #expect(!KernelView.hasPageType(0xFFFF_FFFF))  // _mapcount -1: no type, not mapped
        #expect(!KernelView.hasPageType(0))  // mapped once
        #expect(!KernelView.hasPageType(5))
    }

    @Test func rangesThatTouchAreMerged() {
        var c = RangeCollector()
        c.add(0..<4096)
        c.add(4096..<8192)
        c.add(8192..<8192)
        c.add(12288..<16384)
        #expect(c.ranges == [0..<8192, 12288..<16384])
    }

    /// A guest claiming a million CPUs, a looping vmalloc list and no tasks: each root kind that
    /// cannot be had is a problem (so the scan is incomplete), never a trap or a hang.
    @Test func lyingKernelDataEndsInProblems() throws {
        var guest = try CraftedKernelMemory()
        let k = guest.kernel.symbols
        let cpus = try #require(k.address(of: "nr_cpu_ids")), list = try #require(k.address(of: "vmap_area_list"))
        let vmemmap = try #require(k.address(of: "vmemmap_base"))
        let pages = Set([cpus, list, vmemmap].map { $0 & ~(CraftedKernelMemory.twoMiB - 1) }).sorted()
        for (i, page) in pages.enumerated() { try guest.map(page, to: 0x40_0000 + UInt64(i) * CraftedKernelMemory.twoMiB) }
        try guest.put32(1_000_000, at: cpus)
        try guest.put64(PageCacheLocator.fixedVMemMapBase, at: vmemmap)
        let layout = try guest.kernel.layout.roots.get()
        let area: UInt64 = 0xFFFF_C900_0000_0000
        try guest.map(area, to: 0xC0_0000)
        let link = area + UInt64(layout.areaList)
        try guest.put64(link, at: list)
        try guest.put64(area + 0x10_0000, at: area + UInt64(layout.areaStart))
        try guest.put64(area + 0x10_2000, at: area + UInt64(layout.areaEnd))
        try guest.put64(link, at: link)  // the area's next is itself: a loop that never reaches the head
        let roots = try guest.view().kernelRoots()
        #expect(!roots.isComplete)
        #expect(roots.problems.contains { $0.hasPrefix("per-CPU areas") && $0.contains("1000000") }, "\(roots.problems)")
        #expect(roots.problems.contains { $0.hasPrefix("vmalloc areas") && $0.contains("loops") }, "\(roots.problems)")
        #expect(roots.problems.contains { $0.hasPrefix("task stacks") }, "\(roots.problems)")
        #expect(roots.registerWords.count == 16)
    }
}

/// The `struct page` walk over a crafted vmemmap: which frames are slab, free, user or
/// kernel-owned roots, by the rule in docs/reachability.md.
@Suite struct KernelPageWalkTests {
    static let vmemmap: UInt64 = 0xFFFF_EA00_0000_0000
    static let directMap: UInt64 = 0xFFFF_8880_0000_0000

    @Test func framesAreSortedByTheRule() throws {
        var guest = try CraftedKernelMemory()
        let k = guest.kernel.symbols
        let names = ["vmemmap_base", "page_offset_base", "vmap_area_list"]
        let addresses = try names.map { try #require(k.address(of: $0), "\($0)") }
        let pages = Set(addresses.map { $0 & ~(CraftedKernelMemory.twoMiB - 1) }).sorted()
        for (i, page) in pages.enumerated() { try guest.map(page, to: 0xA0_0000 + UInt64(i) * CraftedKernelMemory.twoMiB) }
        try guest.map(Self.vmemmap, to: 0x80_0000)
        try guest.put64(Self.vmemmap, at: addresses[0])
        try guest.put64(Self.directMap, at: addresses[1])
        try guest.put64(addresses[2], at: addresses[2])  // an empty vmalloc list
        let l = try guest.kernel.layout.roots.get()
        func page(_ frame: UInt64, flags: UInt64 = 0, refCount: UInt32 = 1, type: UInt32 = 0xFFFF_FFFF, mapping: UInt64 = 0) throws {
            let at = Self.vmemmap + frame * UInt64(l.pageSize)
            try guest.put64(flags, at: at + UInt64(l.pageFlags))
            try guest.put32(refCount, at: at + UInt64(l.pageRefCount))
            try guest.put32(type, at: at + UInt64(l.pageType))
            try guest.put64(mapping, at: at + UInt64(l.pageMapping))
        }
        let bit = { (b: Int) in UInt64(1) << UInt64(b) }
        try page(0x100, flags: bit(l.slabBit) | bit(l.headBit))  // an order-1 slab
        try guest.put8(1, at: Self.vmemmap + 0x100 * UInt64(l.pageSize) + UInt64(l.folioOrder))
        try guest.put64(Self.vmemmap + 0x100 * UInt64(l.pageSize) | 1, at: Self.vmemmap + 0x101 * UInt64(l.pageSize) + UInt64(l.pageCompoundHead))
        try page(0x200, flags: bit(l.reservedBit))  // memblock
        try page(0x201, mapping: Self.directMap + 0x5000)  // page cache
        try page(0x202, flags: bit(l.lruBit))
        try page(0x203, type: 0xFFFF_FDFF)  // a page table
        try page(0x204)  // alloc_pages, no flag
        try page(0x205)
        try page(0x206, refCount: 0, type: 0xFFFF_FF7F)  // a buddy head
        let roots = try guest.view().kernelRoots()
        #expect(!roots.problems.contains { $0.hasPrefix("struct page walk") || $0.hasPrefix("vmalloc") }, "\(roots.problems)")
        let slab = roots.ranges.filter { $0.kind == .slabPage }.map(\.range)
        let kernel = roots.ranges.filter { $0.kind == .kernelPage }.map(\.range)
        #expect(slab == [Self.directMap + 0x10_0000..<Self.directMap + 0x10_2000])
        #expect(kernel == [Self.directMap + 0x20_0000..<Self.directMap + 0x20_1000, Self.directMap + 0x20_4000..<Self.directMap + 0x20_6000])
        let c = roots.pageCensus
        #expect(c.frames == 4096 && c.slab == 2 && c.kernel == 3 && c.user == 3 && c.free == 4096 - 8 && c.excluded == 0)
        #expect(roots.freeFrameSample.first == 4095 && roots.freeFrameSample.count == 64)
    }

    /// SLUB's free lists over a crafted slab: each slab's `freelist` and the holding CPU's
    /// `kmem_cache_cpu.freelist`, hardened pointers decoded; a chain that leaves its slab stops.
    @Test func freeSlabSlotsComeFromBothFreeLists() throws {
        var guest = try CraftedKernelMemory()
        let k = guest.kernel.symbols
        let names = ["vmemmap_base", "page_offset_base", "vmap_area_list", "__per_cpu_offset", "nr_cpu_ids", "__cpu_possible_mask"]
        let addresses = try names.map { try #require(k.address(of: $0), "\($0)") }
        let pages = Set(addresses.map { $0 & ~(CraftedKernelMemory.twoMiB - 1) }).sorted()
        for (i, page) in pages.enumerated() { try guest.map(page, to: 0xA0_0000 + UInt64(i) * CraftedKernelMemory.twoMiB) }
        try guest.map(Self.vmemmap, to: 0x80_0000)
        try guest.map(Self.directMap, to: 0)
        try guest.put64(Self.vmemmap, at: addresses[0])
        try guest.put64(Self.directMap, at: addresses[1])
        try guest.put64(addresses[2], at: addresses[2])
        let perCPUBase = Self.directMap + 0x6_0000
        try guest.put64(perCPUBase, at: addresses[3])
        try guest.put32(1, at: addresses[4])
        try guest.put64(1, at: addresses[5])
        let l = try guest.kernel.layout.roots.get(), s = try guest.kernel.layout.slub.get()
        let random: UInt64 = 0x1234_5678_9ABC_DEF0
        #expect(s.cacheRandom != nil)
        // An order-1 slab of 256-byte objects at frame 0x100, free pointer at +128.
        let slabPage = Self.vmemmap + 0x100 * UInt64(l.pageSize), slab = Self.directMap + 0x10_0000
        try guest.put64(UInt64(1) << UInt64(l.slabBit) | UInt64(1) << UInt64(l.headBit), at: slabPage + UInt64(l.pageFlags))
        try guest.put32(1, at: slabPage + UInt64(l.pageRefCount))
        try guest.put32(0xFFFF_FFFF, at: slabPage + UInt64(l.pageType))
        try guest.put8(1, at: slabPage + UInt64(l.folioOrder))
        try guest.put64(slabPage | 1, at: slabPage + UInt64(l.pageSize) + UInt64(l.pageCompoundHead))
        let cache = Self.directMap + 0x5_0000
        try guest.put32(256, at: cache + UInt64(s.cacheSize))
        try guest.put32(128, at: cache + UInt64(s.cacheOffset))
        try guest.put64(random, at: cache + UInt64(try #require(s.cacheRandom)))
        try guest.put64(0x100, at: cache + UInt64(s.cacheCPUSlab))
        try guest.put64(cache, at: slabPage + UInt64(s.slabCache))
        try guest.put64(slab + 0x100, at: slabPage + UInt64(s.slabFreelist))
        try guest.put64(32 << 16 | 20, at: slabPage + UInt64(s.slabCounters))
        try guest.put64(slabPage, at: perCPUBase + 0x100 + UInt64(s.cpuSlab))
        try guest.put64(slab + 0x400, at: perCPUBase + 0x100 + UInt64(s.cpuFreelist))
        func link(_ object: UInt64, to next: UInt64) throws {
            let slot = object + 128
            try guest.put64(next ^ random ^ slot.byteSwapped, at: slot)
        }
        try link(slab + 0x100, to: slab + 0x300)
        try link(slab + 0x300, to: 0)
        try link(slab + 0x400, to: slab + 0x10_0000)  // leaves the slab: the chain stops there
        let roots = try guest.view().kernelRoots()
        #expect(roots.freeSlabSlots.sorted { $0.lowerBound < $1.lowerBound }
                == [slab + 0x100..<slab + 0x200, slab + 0x300..<slab + 0x400, slab + 0x400..<slab + 0x500], "\(roots.problemsNotes)")
        #expect(roots.brokenFreeLists == 1)
    }
}
