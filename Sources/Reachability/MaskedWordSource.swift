/// A candidate source that never serves the words at `ignored` addresses or in `ignoredRanges`:
/// words the kernel keeps about an object that are not references to it (where a vmalloc area
/// starts, in its `vmap_area` and `vm_struct`), and memory whose contents are stale (cached
/// stacks). Ranges are split around what is ignored.
public struct MaskedWordSource<Base: KernelMemoryReading>: KernelMemoryReading {
    public var base: Base
    /// Sorted, disjoint, non-touching ranges never served.
    let holes: [Range<UInt64>]

    public init(_ base: Base, ignoring words: [UInt64], ignoringRanges ranges: [Range<UInt64>] = []) {
        self.base = base
        var all = ranges
        for w in words where w & 7 == 0 {
            let (end, overflow) = w.addingReportingOverflow(8)
            if !overflow { all.append(w..<end) }
        }
        holes = RangeSubtraction.merge(all)
    }

    public var isIncomplete: Bool { base.isIncomplete }

    public mutating func word(at address: UInt64) -> UInt64? { base.word(at: address) }

    public mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void) {
        for piece in RangeSubtraction.subtract(merged: holes, from: [range]) { base.forEachCandidate(in: piece, body) }
    }

    public mutating func frames(of range: Range<UInt64>) -> [UInt64]? { base.frames(of: range) }
}
