import AllocationLedger
import AllocationTracing
import BTF
import DebugInfo
import GuestInterface
import GuestMemory
import Introspection
import LeakAnalysis
import Testing

/// Page-cache lookups over crafted guest memory laid out with the real kernel's BTF: a file, its
/// address_space, XArray nodes and folios in a vmemmap at a randomized-looking base. Hostile
/// trees (loops, wrong shifts, pointers into user space) end in typed errors.
@Suite struct PageCacheLocatorTests {
    static let heap: UInt64 = 0xFFFF_8880_0100_0000
    static let vmemmap: UInt64 = 0xFFFF_D400_4000_0000
    static let file = heap, mapping = heap + 0x1000

    struct Fixture {
        let guest: CraftedKernelMemory
        let layout: KernelLayout.PageCache
        var pages: UInt64 { PageCacheLocatorTests.mapping + UInt64(layout.mappingPages) }

        func head(_ entry: UInt64) throws { try guest.put64(entry, at: pages + UInt64(layout.xarrayHead)) }

        /// XArray node number `n`; `parent` 0 for the root. Returns its address (not the entry).
        func node(_ n: UInt64, shift: UInt8, offset: UInt8 = 0, parent: UInt64 = 0) throws -> UInt64 {
            let node = PageCacheLocatorTests.heap + 0x10000 + n * 0x1000
            try guest.put8(shift, at: node + UInt64(layout.nodeShift))
            try guest.put8(offset, at: node + UInt64(layout.nodeOffset))
            try guest.put64(parent, at: node + UInt64(layout.nodeParent))
            try guest.put64(pages, at: node + UInt64(layout.nodeArray))
            return node
        }

        func slot(_ node: UInt64, _ index: Int, _ entry: UInt64) throws {
            try guest.put64(entry, at: node + UInt64(layout.nodeSlots + 8 * index))
        }

        /// The folio whose head is page frame `frame`, caching file pages `index ..< index + pages`.
        func folio(frame: UInt64, index: UInt64, pages: UInt64 = 1) throws -> UInt64 {
            let folio = PageCacheLocatorTests.vmemmap + frame * UInt64(layout.pageSize)
            try guest.put64(index, at: folio + UInt64(layout.folioIndex))
            if pages > 1 {
                try guest.put64(1 << UInt64(layout.headFlagBit), at: folio + UInt64(layout.folioFlags))
                try guest.put32(UInt32(pages), at: folio + UInt64(try #require(layout.folioPageCount)))
                try guest.put8(UInt8(pages.trailingZeroBitCount), at: folio + UInt64(try #require(layout.folioOrder)))
            }
            return folio
        }

        func locator() throws -> PageCacheLocator { try PageCacheLocator(view: try guest.view()) }

        func lookup(_ index: UInt64) throws -> UInt64? {
            try locator().cachedPage(ofFile: PageCacheLocatorTests.file, pageIndex: index)?.rawValue
        }

        /// The lookup fails with `.inconsistent` saying `text`.
        func expectInconsistent(_ index: UInt64, _ text: String, file: UInt64 = PageCacheLocatorTests.file,
                                sourceLocation: SourceLocation = #_sourceLocation) throws {
            let locator = try locator()
            #expect(sourceLocation: sourceLocation) {
                try locator.cachedPage(ofFile: file, pageIndex: index)
            } throws: { error in
                guard case IntrospectionError.inconsistent(let why) = error else { return false }
                return why.contains(text)
            }
        }
    }

    func fixture(kernel: GuestKernel? = nil) throws -> Fixture {
        var guest = try CraftedKernelMemory(kernel: kernel)
        try guest.map(Self.heap, to: 0x40_0000)
        try guest.map(Self.vmemmap, to: 0x60_0000)
        if let variable = guest.kernel.symbols.address(of: "vmemmap_base") {
            try guest.map(variable, to: 0x20_0000)
            try guest.put64(Self.vmemmap, at: variable)
        }
        let layout = try guest.kernel.layout.pageCache.get()
        try guest.put64(Self.mapping, at: Self.file + UInt64(layout.fileMapping))
        return Fixture(guest: guest, layout: layout)
    }

    @Test func theRealKernelHasTheMembersAndSymbols() throws {
        let kernel = try CraftedKernelMemory.realKernel.get()
        let layout = try kernel.layout.pageCache.get()
        #expect(layout.fileMapping == 216 && layout.mappingPages == 8 && layout.xarrayHead == 8)
        #expect(layout.nodeShift == 0 && layout.nodeOffset == 1 && layout.nodeParent == 8 && layout.nodeArray == 16)
        #expect(layout.nodeSlots == 40 && layout.slotCount == 64)
        #expect(layout.pageSize == 64 && layout.folioFlags == 0 && layout.folioIndex == 32)
        #expect(layout.folioPageCount == 92 && layout.folioOrder == 81 && layout.headFlagBit == 16)
        // CONFIG_RANDOMIZE_MEMORY: the vmemmap start is a variable, and kallsyms has it.
        #expect(kernel.symbols.address(of: "vmemmap_base") != nil)
        #expect(kernel.symbols.address(of: "kernel_randomize_memory") != nil)
        let f = try fixture()
        #expect(try f.locator().vmemmapBase == Self.vmemmap)
    }

    @Test func anEntryAtTheHeadIsPageZero() throws {
        let f = try fixture()
        try f.head(try f.folio(frame: 0x345, index: 0))
        #expect(try f.lookup(0) == 0x345000)
        #expect(try f.lookup(1) == nil)
    }

    @Test func aTwoLevelTreeFindsItsPages() throws {
        let f = try fixture()
        let root = try f.node(0, shift: 6)
        let low = try f.node(1, shift: 0, offset: 0, parent: root)
        let high = try f.node(2, shift: 0, offset: 1, parent: root)
        try f.head(root | 2)
        try f.slot(root, 0, low | 2)
        try f.slot(root, 1, high | 2)
        try f.slot(low, 5, try f.folio(frame: 0x400, index: 5))
        try f.slot(high, 6, try f.folio(frame: 0x401, index: 70))
        #expect(try f.lookup(5) == 0x400000)
        #expect(try f.lookup(70) == 0x401000)
        #expect(try f.lookup(6) == nil)     // empty slot of a leaf
        #expect(try f.lookup(130) == nil)   // empty slot of the root
        #expect(try f.lookup(4096) == nil)  // beyond what the tree can hold
    }

    @Test func aLargeFolioIsFoundThroughItsSiblingEntries() throws {
        let f = try fixture()
        let root = try f.node(0, shift: 0)
        try f.head(root | 2)
        try f.slot(root, 8, try f.folio(frame: 0x500, index: 8, pages: 4))
        for i in 9...11 { try f.slot(root, i, 8 << 2 | 2) }
        #expect(try f.lookup(8) == 0x500000)
        #expect(try f.lookup(10) == 0x502000)
        #expect(try f.lookup(11) == 0x503000)
        #expect(try f.lookup(7) == nil)
        #expect(try f.lookup(12) == nil)
    }

    @Test func aFolioCanFillSlotsOfAnUpperNode() throws {
        let f = try fixture()
        let root = try f.node(0, shift: 6)
        try f.head(root | 2)
        try f.slot(root, 1, try f.folio(frame: 0x800, index: 64, pages: 128))
        try f.slot(root, 2, 1 << 2 | 2)
        #expect(try f.lookup(64) == 0x800000)
        #expect(try f.lookup(100) == 0x824000)
        #expect(try f.lookup(150) == 0x856000)
        #expect(try f.lookup(192) == nil)
    }

    @Test func valueRetryAndZeroEntriesAreNotCached() throws {
        let f = try fixture()
        let root = try f.node(0, shift: 0)
        try f.head(root | 2)
        try f.slot(root, 2, try f.folio(frame: 0x600, index: 2))
        try f.slot(root, 3, 0x1235)  // a shadow entry left by eviction
        try f.slot(root, 4, 256 << 2 | 2)
        try f.slot(root, 5, 257 << 2 | 2)
        #expect(try f.lookup(2) == 0x600000)
        for index: UInt64 in 3...5 { #expect(try f.lookup(index) == nil) }
        try f.head(0x1235)
        #expect(try f.lookup(0) == nil)
    }

    @Test func theInodeOfAFile() throws {
        let f = try fixture()
        let inode = Self.heap + 0x8000
        try f.guest.put64(inode, at: Self.file + UInt64(f.guest.kernel.layout.files.fileInode))
        #expect(try f.locator().inode(ofFile: Self.file) == inode)
        #expect(throws: IntrospectionError.self) { try f.locator().inode(ofFile: 0x7FFF_0000_1000) }
        try f.guest.put64(0, at: Self.file + UInt64(f.guest.kernel.layout.files.fileInode))
        #expect(throws: IntrospectionError.self) { try f.locator().inode(ofFile: Self.file) }
    }

    @Test func aNodeThatPointsAtItselfIsATypedError() throws {
        let f = try fixture()
        let root = try f.node(0, shift: 6)
        try f.head(root | 2)
        try f.slot(root, 0, root | 2)
        try f.expectInconsistent(3, "has shift 6 under a node of shift 6")
    }

    @Test func aLoopBetweenTwoNodesIsATypedError() throws {
        let f = try fixture()
        let root = try f.node(0, shift: 12)
        let child = try f.node(1, shift: 6, offset: 0, parent: root)
        try f.head(root | 2)
        try f.slot(root, 0, child | 2)
        try f.slot(child, 0, root | 2)
        try f.expectInconsistent(1, "has shift 12 under a node of shift 6")
    }

    @Test func aNodeWhoseParentOrSlotDisagreesIsATypedError() throws {
        let f = try fixture()
        let root = try f.node(0, shift: 6)
        try f.head(root | 2)
        try f.slot(root, 0, try f.node(1, shift: 0, offset: 0, parent: 0) | 2)
        try f.expectInconsistent(1, "names parent 0x0")
        try f.slot(root, 0, try f.node(2, shift: 0, offset: 3, parent: root) | 2)
        try f.expectInconsistent(1, "says it is in slot 3, found in slot 0")
    }

    @Test func aShiftThatIsNotAMultipleOfTheChunkIsATypedError() throws {
        let f = try fixture()
        try f.head(try f.node(0, shift: 5) | 2)
        try f.expectInconsistent(1, "shift 5 is not a multiple of 6")
        try f.head(try f.node(1, shift: 66) | 2)
        try f.expectInconsistent(1, "shift 66 is not a multiple of 6")
    }

    @Test func pointersOutsideTheKernelAreTypedErrors() throws {
        let f = try fixture()
        try f.head(try f.folio(frame: 0x345, index: 0))
        try f.expectInconsistent(0, "struct file pointer is 0x7fff00001000", file: 0x7FFF_0000_1000)
        try f.head(0x7FFF_1234_5000)  // a folio pointer into user space
        try f.expectInconsistent(0, "is not a struct page in the vmemmap")
        try f.head(Self.heap + 0x3000)  // a kernel object, but not a struct page
        try f.expectInconsistent(0, "is not a struct page in the vmemmap")
        try f.head(Self.vmemmap + 0x345 * 64 + 8)  // inside a struct page
        try f.expectInconsistent(0, "is not a struct page in the vmemmap")
        try f.head(0x7FFF_0000_0002)  // a node in user space
        try f.expectInconsistent(0, "XArray node pointer 0x7fff00000000 is not a kernel object")
        try f.guest.put64(0x1000, at: Self.file + UInt64(f.layout.fileMapping))
        try f.expectInconsistent(0, "file.f_mapping is 0x1000")
    }

    @Test func aFolioThatDoesNotHoldThePageIsATypedError() throws {
        let f = try fixture()
        try f.head(try f.folio(frame: 0x345, index: 7))
        try f.expectInconsistent(0, "holds file pages 7 + 1, not page 0")
    }

    @Test func aLargeFolioOfImpossibleSizeIsATypedError() throws {
        let f = try fixture()
        let folio = try f.folio(frame: 0x700, index: 0, pages: 4)
        try f.head(folio)
        try f.guest.put32(3, at: folio + UInt64(try #require(f.layout.folioPageCount)))
        try f.expectInconsistent(0, "has order 2 but 3 pages")
        try f.guest.put32(1 << 20, at: folio + UInt64(try #require(f.layout.folioPageCount)))
        try f.guest.put8(20, at: folio + UInt64(try #require(f.layout.folioOrder)))
        try f.expectInconsistent(0, "of 1048576 pages")
    }

    @Test func aPageFrameOutsideGuestRAMIsATypedError() throws {
        let f = try fixture()
        try f.head(try f.folio(frame: 0x7000, index: 0))  // 112 MiB, in a 16 MiB guest
        try f.expectInconsistent(0, "page frame 0x7000")
    }

    @Test func aSiblingThatPointsForwardIsATypedError() throws {
        let f = try fixture()
        let root = try f.node(0, shift: 0)
        try f.head(root | 2)
        try f.slot(root, 4, 9 << 2 | 2)
        try f.expectInconsistent(4, "refers to slot 9")
        try f.slot(root, 5, 4 << 2 | 2)  // to a slot that is itself a sibling
        try f.expectInconsistent(5, "holds no multi-index entry")
    }

    @Test func aKernelWithoutPageCacheTypesFailsOnlyWhenTheLocatorIsMade() throws {
        let real = try CraftedKernelMemory.realKernel.get()
        var layout = real.layout
        layout.pageCache = .failure(.noSuchType("xa_node"))
        let guest = try CraftedKernelMemory(kernel: GuestKernel(symbols: real.symbols, layout: layout))
        let view = try guest.view()
        #expect {
            try PageCacheLocator(view: view)
        } throws: { error in
            guard case IntrospectionError.layout(.noSuchType("xa_node")) = error else { return false }
            return true
        }
    }

    @Test func withoutVMemMapBaseOnlyAFixedLayoutKernelUsesTheDefault() throws {
        let real = try CraftedKernelMemory.realKernel.get()
        func kernel(without names: Set<String>) -> GuestKernel {
            GuestKernel(symbols: KernelSymbols(table: SymbolTable(real.symbols.table.symbols.filter { !names.contains($0.name) })),
                        layout: real.layout)
        }
        let randomized = try fixture(kernel: kernel(without: ["vmemmap_base"]))
        #expect {
            try randomized.locator()
        } throws: { error in
            guard case IntrospectionError.missingSymbol("vmemmap_base") = error else { return false }
            return true
        }
        let fixed = try fixture(kernel: kernel(without: ["vmemmap_base", "kernel_randomize_memory"]))
        #expect(try fixed.locator().vmemmapBase == PageCacheLocator.fixedVMemMapBase)
    }
}
