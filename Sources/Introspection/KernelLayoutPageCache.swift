import BTF
extension KernelLayout {
    /// What `PageCacheLocator` reads: `file.f_mapping` → `address_space.i_pages` (an XArray of
    /// `xa_node`s) → `struct folio`, and the size of `struct page` (the vmemmap stride).
    public struct PageCache: Sendable {
        public var fileMapping = 0, mappingPages = 0, xarrayHead = 0
        public var nodeShift = 0, nodeOffset = 0, nodeParent = 0, nodeArray = 0, nodeSlots = 0
        /// Slots per node: `XA_CHUNK_SIZE`, 64 unless CONFIG_BASE_SMALL.
        public var slotCount = 0
        public var pageSize = 0, folioFlags = 0, folioIndex = 0
        /// `folio._folio_nr_pages` and `folio._folio_order` (in the first tail page); at least one exists.
        public var folioPageCount: Int?, folioOrder: Int?
        /// Bit of `PG_head` in `folio.flags`: set on the head page of a large folio.
        public var headFlagBit = 0

        init(btf: BTF) throws(BTFError) {
            func at(_ type: String, _ path: String) throws(BTFError) -> Int { try btf.member(type, path: path).offset }
            fileMapping = try at("file", "f_mapping")
            mappingPages = try at("address_space", "i_pages")
            xarrayHead = try at("xarray", "xa_head")
            nodeShift = try at("xa_node", "shift")
            nodeOffset = try at("xa_node", "offset")
            nodeParent = try at("xa_node", "parent")
            nodeArray = try at("xa_node", "array")
            let slots = try btf.member("xa_node", path: "slots")
            nodeSlots = slots.offset
            slotCount = slots.arrayCount ?? 0
            pageSize = try btf.size(ofStructure: "page")
            folioFlags = try at("folio", "flags")
            folioIndex = try at("folio", "index")
            folioPageCount = try? at("folio", "_folio_nr_pages")
            folioOrder = try? at("folio", "_folio_order")
            if folioPageCount == nil && folioOrder == nil { throw .noSuchMember("_folio_nr_pages", in: "folio") }
            headFlagBit = Int(clamping: try btf.enumValue("pageflags", "PG_head"))
        }
    }
}
