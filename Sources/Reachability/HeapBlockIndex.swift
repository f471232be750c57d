/// The live blocks of one address space, sorted by address, for answering "which block does this
/// word point into?" in O(log n).
///
/// glibc keeps the header of the next chunk in the last 8 bytes of a block whose size is 8 more
/// than a multiple of 16 (24, 40, 56, 100, ...): the chunk boundary, `start - 16 + chunk size`,
/// lies inside the block. The allocator's own pointers to that header (`main_arena.top`, bins,
/// fastbin links) are therefore not references to the block, and the index never reports a
/// pointer to exactly that address as one (see `allocatorBoundary`).
public struct HeapBlockIndex: Sendable {
    /// Block start addresses, ascending.
    public internal(set) var starts: [UInt64] = []
    /// Block sizes, in the order of `starts`.
    public internal(set) var sizes: [UInt64] = []
    /// Per block, the address of glibc's next chunk header when it lies inside the block, else `UInt64.max`.
    var boundaries: [UInt64] = []
    /// Every `sampleStride`-th start: a lookup searches these few (they stay in the CPU's caches)
    /// before the stride of `starts` that holds the answer, instead of all of `starts` (a cache
    /// miss per step at a quarter million blocks). Built with the index (`sampleStarts`).
    private(set) var samples: [UInt64] = []
    static let sampleShift = 6

    /// A pointer's target.
    public struct Hit: Sendable, Equatable {
        public var block: Int
        /// The pointer is the block's first byte (as opposed to an interior pointer).
        public var atStart: Bool
    }

    /// Builds the index from (start, size) pairs in any order.
    public init(blocks: [(start: UInt64, size: UInt64)]) {
        let sorted = blocks.sorted { $0.start < $1.start }
        starts = sorted.map(\.start)
        sizes = sorted.map(\.size)
        boundaries = sorted.map { Self.allocatorBoundary(start: $0.start, size: $0.size) }
        sampleStarts()
    }

    /// Takes every `sampleStride`-th start as `samples`, once `starts` is complete.
    mutating func sampleStarts() {
        samples = stride(from: 0, to: starts.count, by: 1 << Self.sampleShift).map { starts[$0] }
    }

    public var count: Int { starts.count }

    /// Lowest block start and highest block end: words outside this range point at no block.
    public var span: Range<UInt64> {
        guard let first = starts.first else { return 0..<0 }
        var high: UInt64 = 0
        for i in starts.indices { high = max(high, starts[i].addingSaturated(max(sizes[i], 1))) }
        return first..<max(first, high)
    }

    /// The end of a block, at most 2^64 − 1 (a guest-given size may claim more).
    public func end(of block: Int) -> UInt64 { starts[block].addingSaturated(sizes[block]) }

    /// The bytes of a block, as a range that never wraps.
    public func range(of block: Int) -> Range<UInt64> { starts[block]..<end(of: block) }

    /// The block a word points into, if any. A zero-size block is hit only at its start.
    public func block(containing value: UInt64) -> Hit? {
        var low = 0, high = starts.count
        let shift = Self.sampleShift
        if samples.count == (starts.count + (1 << shift) - 1) >> shift {
            // The last sample at or below the value bounds the stride to search.
            var sampleLow = 0, sampleHigh = samples.count
            while sampleLow < sampleHigh {
                let mid = (sampleLow + sampleHigh) / 2
                if samples[mid] <= value { sampleLow = mid + 1 } else { sampleHigh = mid }
            }
            guard sampleLow > 0 else { return nil }
            low = (sampleLow - 1) << shift
            high = min(starts.count, sampleLow << shift)
        }
        while low < high {
            let mid = (low + high) / 2
            if starts[mid] <= value { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let i = low - 1
        if value == starts[i] { return Hit(block: i, atStart: true) }
        guard value &- starts[i] < sizes[i], value != boundaries[i] else { return nil }
        return Hit(block: i, atStart: false)
    }

    /// Where glibc's next chunk header lies when it is inside the block, else `UInt64.max`.
    /// glibc's chunk for a request of n bytes is max(32, (n + 8 + 15) & ~15) bytes, starting 16
    /// bytes before the block; a chunk that is larger than that puts the boundary past the block.
    static func allocatorBoundary(start: UInt64, size: UInt64) -> UInt64 {
        let chunk = max(32, (size &+ 8 &+ 15) & ~15)
        let boundary = chunk &- 16
        return boundary < size ? start &+ boundary : .max
    }
}
