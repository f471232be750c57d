import Introspection
import Reachability

/// One word of kernel memory that points into the object asked about.
public struct KernelReferrer: Codable, Sendable, Equatable {
    /// Where the word is, and its value.
    public var address: UInt64
    public var value: UInt64
    /// The root kind of the range it lies in (`KernelRootRange.Kind` raw value), if any.
    public var root: String?
    /// The tracked object it lies in (start and size), if any.
    public var object: UInt64?
    public var objectSize: UInt64?
    /// A vmalloc area's own record of its start (`vmap_area.va_start`, `vm_struct.addr`): never a reference.
    public var bookkeeping: Bool
    /// In a free slot on a SLUB free list: stale, never a reference.
    public var freeSlot: Bool = false
}

/// What `leakvisor inspect kernel-refs` answers: every word of the kernel's roots and of the
/// tracked objects that points into an address range, so a user can see why an object is (not)
/// reachable. Read with the guest paused.
public struct KernelReferrerSearch: Codable, Sendable, Equatable {
    public var target: UInt64
    public var size: UInt64
    /// Whether `target` is a live object of the kernel ledger (then `size` is its size).
    public var tracked: Bool
    /// At most `limit` referrers, in address order.
    public var referrers: [KernelReferrer]
    public var moreReferrers: Int
    public var bytesSearched: UInt64
    public var problems: [String]

    public static let limit = 64

    /// Searches the roots of `view` (conservative kinds whole: they are where stale pointers
    /// hide) and `objects`, plus `extraRoots`.
    public static func search(target: Range<UInt64>, tracked: Bool, view: KernelView, objects: [KernelScanObject],
                              extraRoots: [Range<UInt64>] = []) -> KernelReferrerSearch {
        let roots = view.kernelRoots()
        var source = KernelMemorySource(space: view.space, directMapBase: try? view.directMapBase())
        let index = HeapBlockIndex(blocks: KernelLeakScanner.deduplicated(objects).map { ($0.address, $0.size) })
        let ignored = Set(roots.ignoredWords)
        let freeSlots = RangeSubtraction.merge(roots.freeSlabSlots)
        func inFreeSlot(_ address: UInt64) -> Bool {
            var low = 0, high = freeSlots.count
            while low < high {
                let mid = (low + high) / 2
                if freeSlots[mid].upperBound <= address { low = mid + 1 } else { high = mid }
            }
            return low < freeSlots.count && freeSlots[low].contains(address)
        }
        var found: [UInt64: KernelReferrer] = [:]
        var ranges = roots.ranges.map { ($0.range, Optional($0.kind.rawValue)) } + extraRoots.map { ($0, Optional("module data")) }
        ranges += (0..<index.count).map { (index.range(of: $0), nil) }
        for (range, kind) in ranges {
            source.forEachWord(in: range) { address, value in
                guard target.contains(value), !(target.contains(address)) else { return }
                var referrer = found[address] ?? KernelReferrer(address: address, value: value, root: nil, object: nil, objectSize: nil,
                                                               bookkeeping: ignored.contains(address), freeSlot: inFreeSlot(address))
                if let kind { referrer.root = kind }
                if let start = index.startOfBlock(containing: address), let i = index.starts.firstIndex(of: start) {
                    referrer.object = start
                    referrer.objectSize = index.sizes[i]
                }
                found[address] = referrer
            }
        }
        let sorted = found.values.sorted { $0.address < $1.address }
        var problems = roots.problems
        if source.unreadablePages > 0 { problems.append("\(source.unreadablePages) mapped kernel page(s) could not be read") }
        return KernelReferrerSearch(target: target.lowerBound, size: target.upperBound &- target.lowerBound, tracked: tracked,
                                    referrers: Array(sorted.prefix(limit)), moreReferrers: max(0, sorted.count - limit),
                                    bytesSearched: source.bytesScanned, problems: problems)
    }
}
