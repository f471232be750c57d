/// Looks up one index of a guest kernel XArray (`struct xarray`), as xas_load() does: the head
/// is an entry (index 0 only) or an internal node pointer (`node | 2`); each node splits the
/// index by `shift` into `slots`, and a sibling entry (internal value below the slot count - 1)
/// refers to the canonical slot of a multi-index entry in the same node. Untrusted: every node
/// must be a kernel object whose shift, parent, slot offset and array agree with the path to it,
/// so a loop fails at its first repeated node and the walk is at most 64 / chunk-shift levels.
struct XArrayWalker {
    let view: KernelView
    let layout: KernelLayout.PageCache
    /// log2 of the slots per node (`XA_CHUNK_SHIFT`).
    let chunkShift: Int

    /// `xa_mk_internal(256)` and `xa_mk_internal(257)`: a concurrent change, a reserved index.
    static let retryEntry: UInt64 = 256 << 2 | 2
    static let zeroEntry: UInt64 = 257 << 2 | 2

    /// The pointer entry (low bits 00, not NULL) at `index` of the XArray at `array`, or nil when
    /// the index is empty or holds a value, retry or zero entry.
    func pointer(in array: UInt64, index: UInt64) throws(IntrospectionError) -> UInt64? {
        var entry = try view.u64(array &+ UInt64(layout.xarrayHead), "xarray.xa_head")
        guard Self.isNode(entry) else { return index == 0 ? try leaf(entry) : nil }
        let slotCount = UInt64(layout.slotCount)
        var parent: UInt64 = 0, parentShift = 0, parentOffset = 0
        for _ in 0...(64 + chunkShift - 1) / chunkShift {
            let node = entry &- 2
            guard PageCacheLocator.isKernelObject(node), node & 7 == 0 else {
                throw .inconsistent("XArray node pointer 0x\(hex(node)) is not a kernel object")
            }
            let shift = Int(try byte(node, layout.nodeShift, "xa_node.shift"))
            if parent == 0 {
                guard shift % chunkShift == 0, shift < 64 else {
                    throw .inconsistent("XArray root node shift \(shift) is not a multiple of \(chunkShift) below 64")
                }
                // Beyond the largest index the tree can hold.
                if index >> shift >= slotCount { return nil }
            } else {
                guard shift == parentShift - chunkShift else {
                    throw .inconsistent("XArray node 0x\(hex(node)) has shift \(shift) under a node of shift \(parentShift)")
                }
                let offset = Int(try byte(node, layout.nodeOffset, "xa_node.offset"))
                guard offset == parentOffset else {
                    throw .inconsistent("XArray node 0x\(hex(node)) says it is in slot \(offset), found in slot \(parentOffset)")
                }
            }
            let recordedParent = try view.u64(node &+ UInt64(layout.nodeParent), "xa_node.parent")
            let recordedArray = try view.u64(node &+ UInt64(layout.nodeArray), "xa_node.array")
            guard recordedParent == parent, recordedArray == array else {
                throw .inconsistent("XArray node 0x\(hex(node)) names parent 0x\(hex(recordedParent)) and array "
                    + "0x\(hex(recordedArray)), reached from 0x\(hex(parent)) in 0x\(hex(array))")
            }
            var offset = Int((index >> shift) & (slotCount - 1))
            entry = try slot(node, offset)
            if isSibling(entry) {
                let canonical = Int(entry >> 2)
                guard canonical < offset else {
                    throw .inconsistent("XArray sibling entry in slot \(offset) refers to slot \(canonical), not an earlier one")
                }
                offset = canonical
                entry = try slot(node, offset)
                guard !isSibling(entry), !Self.isNode(entry) else {
                    throw .inconsistent("XArray sibling entry refers to slot \(offset), which holds no multi-index entry")
                }
            }
            guard Self.isNode(entry) else { return try leaf(entry) }
            guard shift > 0 else { throw .inconsistent("XArray leaf node 0x\(hex(node)) holds a node pointer") }
            (parent, parentShift, parentOffset) = (node, shift, offset)
        }
        throw .inconsistent("an XArray deeper than 64 index bits")
    }

    /// xa_is_node(): internal entries (low bits 0b10) above 4096.
    static func isNode(_ entry: UInt64) -> Bool { entry & 3 == 2 && entry > 4096 }

    /// xa_is_sibling(): internal entries 0 ..< slot count - 1.
    private func isSibling(_ entry: UInt64) -> Bool { entry & 3 == 2 && entry >> 2 < UInt64(layout.slotCount - 1) }

    /// A leaf entry: a pointer, or nil for NULL, a value entry (bit 0) or a retry/zero entry.
    private func leaf(_ entry: UInt64) throws(IntrospectionError) -> UInt64? {
        if entry == 0 || entry & 1 != 0 || entry == Self.retryEntry || entry == Self.zeroEntry { return nil }
        guard entry & 3 == 0 else { throw .inconsistent("XArray internal entry 0x\(hex(entry)) where an entry belongs") }
        return entry
    }

    private func hex(_ value: UInt64) -> String { String(value, radix: 16) }

    private func slot(_ node: UInt64, _ offset: Int) throws(IntrospectionError) -> UInt64 {
        try view.u64(node &+ UInt64(layout.nodeSlots + 8 * offset), "xa_node.slots[\(offset)]")
    }

    private func byte(_ node: UInt64, _ offset: Int, _ what: String) throws(IntrospectionError) -> UInt8 {
        try view.bytes(node &+ UInt64(offset), 1, what)[0]
    }
}
