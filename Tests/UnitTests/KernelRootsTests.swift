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
