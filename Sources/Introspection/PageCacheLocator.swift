import BTF
import GuestMemory

/// Finds the guest-physical page that caches a page of an open guest file: `file->f_mapping`
/// (a `struct address_space`) keeps its cached folios in the XArray `i_pages`, indexed by file
/// page (offset / 4096); a folio's place in the kernel's `struct page` array (the vmemmap) gives
/// its page frame. Guest data is untrusted: pointers, index ranges, folio sizes and the page
/// frame are checked, and failures are typed `IntrospectionError`s.
public struct PageCacheLocator: Sendable {
    public let view: KernelView
    let layout: KernelLayout.PageCache
    /// Run-time address of the `struct page` of page frame 0.
    public let vmemmapBase: UInt64
    let walker: XArrayWalker

    /// x86-64 `VMEMMAP_START` of the fixed 4-level layout (no CONFIG_DYNAMIC_MEMORY_LAYOUT).
    public static let fixedVMemMapBase: UInt64 = 0xFFFF_EA00_0000_0000
    /// Largest folio accepted: a 1 GiB (PUD) huge page.
    static let maximumFolioPages: UInt64 = 1 << 18

    /// Takes the page-cache layout from the kernel's BTF and the vmemmap start from the kernel
    /// variable `vmemmap_base`. A kernel without that symbol has the fixed layout and
    /// `fixedVMemMapBase` is used, but only if it has no memory randomization
    /// (`kernel_randomize_memory`) and the guest runs 4-level paging; otherwise the missing
    /// symbol is an error rather than a guess.
    public init(view: KernelView) throws(IntrospectionError) {
        switch view.kernel.layout.pageCache {
        case .success(let layout): self.layout = layout
        case .failure(let error): throw .layout(error)
        }
        let slots = layout.slotCount
        guard slots >= 4, slots <= 64, slots & (slots - 1) == 0 else {
            throw .kernelImage("xa_node.slots has \(slots) entries, not a power of two from 4 to 64")
        }
        guard layout.pageSize >= 32, layout.pageSize <= 256, layout.pageSize % 8 == 0 else {
            throw .kernelImage("struct page of \(layout.pageSize) bytes")
        }
        guard layout.headFlagBit >= 0, layout.headFlagBit < 64 else { throw .kernelImage("PG_head is bit \(layout.headFlagBit)") }
        self.view = view
        self.walker = XArrayWalker(view: view, layout: layout, chunkShift: slots.trailingZeroBitCount)
        self.vmemmapBase = try Self.vmemmapBase(of: view)
    }

    /// The inode (`file->f_inode`) of an open file (`struct file *`).
    public func inode(ofFile file: UInt64) throws(IntrospectionError) -> UInt64 {
        try Self.requireKernelObject(file, "struct file pointer")
        let inode = try view.u64(file &+ UInt64(view.kernel.layout.files.fileInode), "file.f_inode")
        try Self.requireKernelObject(inode, "file.f_inode")
        return inode
    }

    /// The guest-physical address of the cached page `pageIndex` (file offset / 4096) of an open
    /// file (`struct file *`), or nil when that page is not in the page cache (never read, evicted
    /// to a shadow entry, or swapped out of tmpfs).
    public func cachedPage(ofFile file: UInt64, pageIndex: UInt64) throws(IntrospectionError) -> GuestPhysicalAddress? {
        try cachedPage(inMapping: try mapping(ofFile: file), pageIndex: pageIndex)
    }

    /// The page cache (`file->f_mapping`, a `struct address_space *`) of an open file.
    public func mapping(ofFile file: UInt64) throws(IntrospectionError) -> UInt64 {
        try Self.requireKernelObject(file, "struct file pointer")
        let mapping = try view.u64(file &+ UInt64(layout.fileMapping), "file.f_mapping")
        try Self.requireKernelObject(mapping, "file.f_mapping")
        return mapping
    }

    /// The guest-physical address of the cached page `pageIndex` of a page cache (`struct
    /// address_space *`), or nil when that page is not cached: how the monitor checks that a page
    /// it wrote into is still that file's page.
    public func cachedPage(inMapping mapping: UInt64, pageIndex: UInt64) throws(IntrospectionError) -> GuestPhysicalAddress? {
        try Self.requireKernelObject(mapping, "address_space pointer")
        guard let folio = try walker.pointer(in: mapping &+ UInt64(layout.mappingPages), index: pageIndex) else { return nil }
        return try physicalAddress(ofPage: pageIndex, inFolio: folio)
    }

    /// Where page `pageIndex` of the file lies inside `folio` (a `struct folio *`, i.e. the
    /// `struct page *` of its head), checked against the folio's index and size.
    func physicalAddress(ofPage pageIndex: UInt64, inFolio folio: UInt64) throws(IntrospectionError) -> GuestPhysicalAddress {
        let stride = UInt64(layout.pageSize)
        guard Self.isKernelObject(folio), folio >= vmemmapBase, (folio - vmemmapBase) % stride == 0 else {
            throw .inconsistent("page cache entry 0x\(String(folio, radix: 16)) is not a struct page in the vmemmap "
                + "at 0x\(String(vmemmapBase, radix: 16))")
        }
        let flags = try view.u64(folio &+ UInt64(layout.folioFlags), "folio.flags")
        let first = try view.u64(folio &+ UInt64(layout.folioIndex), "folio.index")
        let count = flags >> UInt64(layout.headFlagBit) & 1 == 0 ? 1 : try pages(ofLargeFolio: folio)
        guard pageIndex >= first, pageIndex - first < count else {
            throw .inconsistent("folio 0x\(String(folio, radix: 16)) holds file pages \(first) + \(count), not page \(pageIndex)")
        }
        let frame = (folio - vmemmapBase) / stride + (pageIndex - first)
        guard frame < 1 << 40, view.memory.contains(GuestPhysicalAddress(frame << 12), length: 4096) else {
            throw .inconsistent("page frame 0x\(String(frame, radix: 16)) of folio 0x\(String(folio, radix: 16)) is outside guest RAM")
        }
        return GuestPhysicalAddress(frame << 12)
    }

    /// folio_nr_pages() of a folio whose head has PG_head: `_folio_nr_pages` (64-bit kernels) or
    /// 1 << `_folio_order`, which must agree when both exist.
    private func pages(ofLargeFolio folio: UInt64) throws(IntrospectionError) -> UInt64 {
        var count: UInt64?
        if let offset = layout.folioPageCount {
            count = UInt64(try view.u32(folio &+ UInt64(offset), "folio._folio_nr_pages"))
        }
        if let offset = layout.folioOrder {
            let order = try view.bytes(folio &+ UInt64(offset), 1, "folio._folio_order")[0]
            guard order < 32, count == nil || count == 1 << UInt64(order) else {
                throw .inconsistent("folio 0x\(String(folio, radix: 16)) has order \(order) but \(count ?? 0) pages")
            }
            count = 1 << UInt64(order)
        }
        guard let count, count >= 2, count <= Self.maximumFolioPages, count & (count - 1) == 0 else {
            throw .inconsistent("large folio 0x\(String(folio, radix: 16)) of \(count ?? 0) pages")
        }
        return count
    }

    static func vmemmapBase(of view: KernelView) throws(IntrospectionError) -> UInt64 {
        guard let variable = try? view.symbol("vmemmap_base") else {
            guard view.kernel.symbols.address(of: "kernel_randomize_memory") == nil, view.mode == .fourLevel else {
                throw .missingSymbol("vmemmap_base")
            }
            return fixedVMemMapBase
        }
        let base = try view.u64(variable.rawValue, "vmemmap_base")
        guard isKernelObject(base), base & 0xFFF == 0 else {
            throw .inconsistent("vmemmap_base is 0x\(String(base, radix: 16)), not a page-aligned kernel address")
        }
        return base
    }

    /// A kernel-half address below the last page (where ERR_PTR values live), so that adding a
    /// structure offset cannot wrap.
    static func isKernelObject(_ address: UInt64) -> Bool {
        address >= 0xFFFF_8000_0000_0000 && address < 0xFFFF_FFFF_FFFF_F000
    }

    static func requireKernelObject(_ address: UInt64, _ what: String) throws(IntrospectionError) {
        guard isKernelObject(address) else { throw .inconsistent("\(what) is 0x\(String(address, radix: 16)), not a kernel address") }
    }
}
