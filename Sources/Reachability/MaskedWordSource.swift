/// A candidate source that never serves the words at `ignored` addresses: words the kernel keeps
/// about an object that are not references to it (where a vmalloc area starts, in its
/// `vmap_area` and `vm_struct`). Ranges are split around the ignored words.
public struct MaskedWordSource<Base: KernelMemoryReading>: KernelMemoryReading {
    public var base: Base
    /// 8-byte aligned addresses, ascending.
    public let ignored: [UInt64]

    public init(_ base: Base, ignoring words: [UInt64]) {
        self.base = base
        self.ignored = Array(Set(words.filter { $0 & 7 == 0 })).sorted()
    }

    public var isIncomplete: Bool { base.isIncomplete }

    public mutating func word(at address: UInt64) -> UInt64? { base.word(at: address) }

    public mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void) {
        var first = firstIgnored(atOrAbove: range.lowerBound)
        guard first < ignored.count, ignored[first] < range.upperBound else {
            base.forEachCandidate(in: range, body)
            return
        }
        var start = range.lowerBound
        while first < ignored.count, ignored[first] < range.upperBound {
            let word = ignored[first]
            if start < word { base.forEachCandidate(in: start..<word, body) }
            let (next, overflow) = word.addingReportingOverflow(8)
            guard !overflow else { return }
            start = max(start, next)
            first += 1
        }
        if start < range.upperBound { base.forEachCandidate(in: start..<range.upperBound, body) }
    }

    public mutating func frames(of range: Range<UInt64>) -> [UInt64]? { base.frames(of: range) }

    /// Index of the first ignored address ≥ `address`.
    func firstIgnored(atOrAbove address: UInt64) -> Int {
        var low = 0, high = ignored.count
        while low < high {
            let mid = (low + high) / 2
            if ignored[mid] < address { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
