import BTF
/// Collects the entries of a kernel maple tree (Linux 6.1+ keeps a process's VMAs in
/// `mm->mm_mt`). Node layouts come from BTF; encoded node pointers carry the node type in bits
/// 3-6, the root pointer also xa_mk_node()'s internal-entry bits. Untrusted: depth, node count and every pointer are checked.
struct MapleTreeWalker {
    let view: KernelView
    static let maximumDepth = 16
    static let maximumNodes = 100_000

    /// Non-null leaf entries (e.g. `vm_area_struct` addresses) in index order.
    func entries(root: UInt64) throws(IntrospectionError) -> [UInt64] {
        var out: [UInt64] = []
        var nodes = 0
        guard root != 0 else { return [] }
        if !Self.isNode(root) { return [root] }  // a single entry stored in the root
        try walk(root, max: UInt64.max, depth: 0, nodes: &nodes, into: &out)
        return out
    }

    /// xa_is_node(): internal entries have low bits 0b10 and lie above 4096.
    static func isNode(_ entry: UInt64) -> Bool { entry & 3 == 2 && entry > 4096 }

    private func walk(_ encoded: UInt64, max: UInt64, depth: Int, nodes: inout Int,
                      into out: inout [UInt64]) throws(IntrospectionError) {
        let m = view.kernel.layout.maple
        nodes += 1
        guard depth < Self.maximumDepth, nodes < Self.maximumNodes else {
            throw .inconsistent("a maple tree is deeper than \(Self.maximumDepth) or has over \(Self.maximumNodes) nodes")
        }
        let node = encoded & ~UInt64(0xFF)
        guard node >= 0xFFFF_8000_0000_0000 else { throw .inconsistent("maple node pointer 0x\(String(node, radix: 16))") }
        let type = (encoded >> 3) & 0xF
        let isLeaf = type == m.typeLeaf64
        let layout: KernelLayout.MapleNodeLayout
        if type == m.typeArange64 {
            layout = m.arange
        } else if type == m.typeRange64 || isLeaf {
            layout = m.range
        } else {
            throw .inconsistent("maple node of unknown type \(type)")
        }
        let (pivotCount, slotCount) = (layout.pivotCount, layout.slotCount)
        guard pivotCount > 0, slotCount == pivotCount + 1 else { throw .inconsistent("maple node layout from BTF") }
        let pivots = try view.words(try view.member(node, layout.pivots, "maple node pivots"), pivotCount, "maple node pivots")
        let metaEnd = Int(try view.bytes(try view.member(node, layout.metaEnd, "maple node metadata"), 1, "maple node metadata")[0])
        // ma_data_end(): the last used slot.
        let end: Int
        if type == m.typeArange64 || pivots[pivotCount - 1] == 0 {
            end = metaEnd
        } else if pivots[pivotCount - 1] == max {
            end = pivotCount - 1
        } else {
            end = pivotCount
        }
        guard end < slotCount else { throw .inconsistent("maple node data end \(end) beyond \(slotCount) slots") }
        for (i, slot) in try view.words(try view.member(node, layout.slots, "maple node slots"), end + 1, "maple node slots").enumerated() {
            guard slot != 0 else { continue }
            if isLeaf {
                out.append(slot)
            } else {
                let childMax = i < pivotCount && pivots[i] != 0 ? pivots[i] : max
                // Child slots are encoded nodes (node | type << 3 | 4); only the root carries xa_mk_node's 2.
                try walk(slot, max: childMax, depth: depth + 1, nodes: &nodes, into: &out)
            }
        }
    }
}
