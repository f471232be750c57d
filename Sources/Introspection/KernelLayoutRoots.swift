import BTF
extension KernelLayout {
    /// What the kernel root enumeration (`KernelView.kernelRoots`) reads besides tasks: `struct
    /// page` (flags, refcount, page type, mapping, compound head, folio order) and the vmalloc
    /// bookkeeping (`vmap_area`, `vm_struct`). All from BTF.
    public struct Roots: Sendable {
        public var pageSize = 0, pageFlags = 0, pageRefCount = 0, pageType = 0, pageMapping = 0, pageCompoundHead = 0
        /// `folio._folio_order`: in the first tail page's bytes (offset from the head's `struct page`).
        public var folioOrder = 0
        /// Bits of `enum pageflags`.
        public var slabBit = 0, reservedBit = 0, lruBit = 0, headBit = 0
        public var areaStart = 0, areaEnd = 0, areaList = 0, areaVM = 0
        public var vmAddress = 0, vmSize = 0, vmFlags = 0, vmPages = 0, vmPageCount = 0
        /// sizeof(struct task_struct).
        public var taskStructSize = 0

        init(btf: BTF) throws(BTFError) {
            func at(_ type: String, _ path: String) throws(BTFError) -> Int { try btf.member(type, path: path).offset }
            func bit(_ name: String) throws(BTFError) -> Int { Int(clamping: try btf.enumValue("pageflags", name)) }
            pageSize = try btf.size(ofStructure: "page")
            pageFlags = try at("page", "flags")
            pageRefCount = try at("page", "_refcount")
            pageType = try at("page", "page_type")
            pageMapping = try at("page", "mapping")
            pageCompoundHead = try at("page", "compound_head")
            folioOrder = try at("folio", "_folio_order")
            slabBit = try bit("PG_slab")
            reservedBit = try bit("PG_reserved")
            lruBit = try bit("PG_lru")
            headBit = try bit("PG_head")
            areaStart = try at("vmap_area", "va_start")
            areaEnd = try at("vmap_area", "va_end")
            areaList = try at("vmap_area", "list")
            areaVM = try at("vmap_area", "vm")
            vmAddress = try at("vm_struct", "addr")
            vmSize = try at("vm_struct", "size")
            vmFlags = try at("vm_struct", "flags")
            vmPages = try at("vm_struct", "pages")
            vmPageCount = try at("vm_struct", "nr_pages")
            taskStructSize = try btf.size(ofStructure: "task_struct")
        }
    }
}
