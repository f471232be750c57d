/// Finds the chunks glibc's malloc has handed out in a guest process, from its own metadata in
/// guest memory: a walk of the main heap chunk by chunk, the free lists that make free chunks look
/// in use (tcache, fastbins), and chunks mmapped on their own. Pure: memory comes from `read`, one
/// little-endian word at a time; every value read is checked (bounds, alignment, overflow, loops)
/// and the walk is bounded, so a hostile guest can only make it fail with a `GlibcHeapError`.
public struct GlibcHeapWalker {
    public typealias Layout = GlibcMallocLayout
    /// Reads the 8-byte word at a guest virtual address.
    let read: (UInt64) throws(GlibcHeapError) -> UInt64
    /// Most chunks one walk or list visits.
    public var chunkLimit = 1 << 22

    public init(read: @escaping (UInt64) throws(GlibcHeapError) -> UInt64) {
        self.read = read
    }

    /// A chunk malloc handed out: where its header is and its size field's size (flags masked).
    public struct Chunk: Equatable, Sendable {
        public var address: UInt64
        public var size: UInt64
        public var mmapped: Bool

        public init(address: UInt64, size: UInt64, mmapped: Bool = false) {
            self.address = address
            self.size = size
            self.mmapped = mmapped
        }

        /// What malloc returned for it.
        public var userAddress: UInt64 { address &+ Layout.userOffset }
        /// `malloc_usable_size`: the chunk less its size field (and prev_size when mmapped).
        public var usableSize: UInt64 { size &- (mmapped ? 16 : 8) }
    }

    /// The main heap's walk: its chunks whose successor says they are in use, and its top chunk.
    public struct HeapWalk: Equatable, Sendable {
        public var inUse: [Chunk] = []
        public var top: UInt64 = 0
        public var freeChunks = 0
    }

    /// Walks the heap in `start..<end` (the `[heap]` mapping) from its first chunk. With `top`
    /// (the arena's), stops there; without, the chunk that ends exactly at `end` is the top one.
    public func walkHeap(start: UInt64, end: UInt64, top knownTop: UInt64? = nil) throws(GlibcHeapError) -> HeapWalk {
        guard start & (Layout.alignment - 1) == 0 else { throw .misalignedChunk(address: start) }
        if let knownTop, knownTop < start || knownTop >= end || knownTop & (Layout.alignment - 1) != 0 {
            throw .topNotInHeap(top: knownTop)
        }
        var walk = HeapWalk()
        var chunk = start
        var visited = 0
        while true {
            if let knownTop {
                if chunk == knownTop { walk.top = chunk; return walk }
                if chunk > knownTop { throw .walkedPastTop(address: chunk, top: knownTop) }
            }
            guard visited < chunkLimit else { throw .tooManyChunks(limit: chunkLimit) }
            visited += 1
            let size = try chunkSize(at: chunk, end: end)
            let next = chunk &+ size      // cannot wrap: `chunkSize` checked it ends by `end`
            if next == end {
                if let knownTop { throw .walkedPastTop(address: next, top: knownTop) }
                walk.top = chunk
                return walk
            }
            // The successor's PREV_INUSE says whether this chunk is in use.
            guard end - next >= Layout.userOffset else { throw .chunkPastEnd(address: next, size: Layout.userOffset, end: end) }
            let nextField = try read(next &+ 8)
            if nextField & Layout.previousInUse != 0 {
                walk.inUse.append(Chunk(address: chunk, size: size))
            } else {
                walk.freeChunks += 1
            }
            chunk = next
        }
    }

    /// Where the first chunk of the heap in `start..<end` may be: the mapping's start (a dynamic
    /// program), then each 16-aligned address in its first `scanBytes` whose size field is the
    /// tcache struct's, the first chunk malloc makes (a static program's startup puts its TLS block
    /// at the start of the heap with `sbrk` first). Walk from each until one reaches the top.
    public func firstChunkCandidates(start: UInt64, end: UInt64, scanBytes: UInt64 = 64 << 10) -> [UInt64] {
        var candidates = [start]
        guard start & (Layout.alignment - 1) == 0, start < end else { return candidates }
        let limit = start &+ min(scanBytes, end - start)
        var chunk = start &+ Layout.alignment
        while chunk < limit, limit - chunk >= Layout.userOffset {
            if (try? read(chunk &+ 8)) == Layout.tcacheChunkSizeField { candidates.append(chunk) }
            chunk &+= Layout.alignment
        }
        return candidates
    }

    /// Walks the heap from the first of `candidates` that walks to the top chunk; the error of the
    /// mapping's start when none does.
    public func walkHeap(candidates: [UInt64], end: UInt64) throws(GlibcHeapError) -> HeapWalk {
        var first: GlibcHeapError?
        for candidate in candidates {
            do { return try walkHeap(start: candidate, end: end) } catch { first = first ?? error }
        }
        throw first ?? .unreadable(address: end)
    }

    /// The size of the heap chunk at `chunk`, checked: aligned, at least MINSIZE, not mmapped,
    /// and ending by `end`.
    func chunkSize(at chunk: UInt64, end: UInt64) throws(GlibcHeapError) -> UInt64 {
        guard chunk & (Layout.alignment - 1) == 0 else { throw .misalignedChunk(address: chunk) }
        guard chunk < end, end - chunk >= Layout.userOffset else { throw .chunkPastEnd(address: chunk, size: Layout.userOffset, end: end) }
        let field = try read(chunk &+ 8)
        let size = field & ~Layout.sizeFlags
        guard field & Layout.isMmapped == 0 else { throw .mmappedChunkInHeap(address: chunk) }
        guard size >= Layout.minimumChunk else { throw .chunkTooSmall(address: chunk, size: size) }
        guard size & (Layout.alignment - 1) == 0 else { throw .misalignedSize(address: chunk, size: size) }
        let (next, wraps) = chunk.addingReportingOverflow(size)
        guard !wraps else { throw .chunkWraps(address: chunk, size: size) }
        guard next <= end else { throw .chunkPastEnd(address: chunk, size: size, end: end) }
        return size
    }

    /// The chunks in the tcache whose `tcache_perthread_struct` is the chunk at `structChunk`
    /// (all 64 bins), as chunk addresses.
    public func tcacheChunks(structChunk: UInt64) throws(GlibcHeapError) -> Set<UInt64> {
        var chunks = Set<UInt64>()
        let entries = structChunk &+ Layout.userOffset &+ Layout.tcacheEntries
        for bin in 0..<Layout.tcacheBins {
            let head = try read(entries &+ UInt64(bin) * 8)
            // Entries point at the user memory of a chunk; `next` is its first word.
            try follow(list: "tcache bin \(bin)", head: head, offset: Layout.userOffset, into: &chunks) { (entry) throws(GlibcHeapError) in
                Layout.revealed(try read(entry), at: entry)
            }
        }
        return chunks
    }

    /// The chunks in the fastbins of the arena at `arena`, as chunk addresses.
    public func fastbinChunks(arena: UInt64) throws(GlibcHeapError) -> Set<UInt64> {
        var chunks = Set<UInt64>()
        for bin in 0..<Layout.fastbinCount {
            let head = try read(arena &+ Layout.arenaFastbins &+ UInt64(bin) * 8)
            // Fastbin heads are chunk addresses; `fd` (chunk + 16) links them.
            try follow(list: "fastbin \(bin)", head: head, offset: 0, into: &chunks) { (chunk) throws(GlibcHeapError) in
                let field = chunk &+ Layout.userOffset
                return Layout.revealed(try read(field), at: field)
            }
        }
        return chunks
    }

    /// Follows one singly linked free list from `head` (an address `offset` bytes into its chunk)
    /// to a null link, adding each chunk; a misaligned entry, a loop, or a list longer than
    /// `chunkLimit` is an error.
    private func follow(list: String, head: UInt64, offset: UInt64, into chunks: inout Set<UInt64>,
                        next: (UInt64) throws(GlibcHeapError) -> UInt64) throws(GlibcHeapError) {
        var entry = head
        var length = 0
        var seen = Set<UInt64>()
        while entry != 0 {
            guard entry & (Layout.alignment - 1) == 0, entry >= offset else { throw .misalignedFreeChunk(list: list, address: entry) }
            guard length < chunkLimit else { throw .freeListTooLong(list: list, limit: chunkLimit) }
            guard seen.insert(entry).inserted else { throw .freeListLoops(list: list, address: entry) }
            length += 1
            chunks.insert(entry - offset)
            entry = try next(entry)
        }
    }

    /// Whether the arena at `base` looks like glibc's main arena whose top chunk is `top`: its
    /// `top` field holds it, and each of its 127 regular bins is either empty (both links point at
    /// the bin itself) or has two non-null links; at least `minimumEmptyBins` are empty.
    public func isArena(at base: UInt64, top: UInt64, minimumEmptyBins: Int = 32) throws(GlibcHeapError) -> Bool {
        guard try read(base &+ Layout.arenaTop) == top else { return false }
        var empty = 0
        for pair in 0..<Layout.binPairs {
            let field = base &+ Layout.arenaBins &+ UInt64(pair) * 16
            // bin_at(m, i) is the chunk whose fd/bk fields are bins[2(i-1)], bins[2(i-1)+1].
            let bin = field &- 16
            let (fd, bk) = (try read(field), try read(field &+ 8))
            if fd == bin && bk == bin {
                empty += 1
            } else if fd == 0 || bk == 0 {
                return false
            }
        }
        return empty >= minimumEmptyBins
    }

    /// Finds the main arena in `range` (libc's writable data): the first 8-aligned address whose
    /// word is `top` at an arena's `top` offset and that passes `isArena`. Reads at most the range.
    public func findArena(in range: Range<UInt64>, top: UInt64) -> UInt64? {
        var field = (range.lowerBound &+ 7) & ~7 &+ Layout.arenaTop
        while field < range.upperBound, field >= range.lowerBound {
            let base = field - Layout.arenaTop
            guard range.upperBound - base >= Layout.arenaSize else { return nil }
            if (try? read(field)) == top, (try? isArena(at: base, top: top)) == true { return base }
            field &+= 8
        }
        return nil
    }

    /// Chunks mmapped on their own at the start of the anonymous mapping `start..<end`, back to
    /// back (the kernel merges adjacent ones into one mapping): prev_size 0, flags IS_MMAPPED only,
    /// a page-multiple size ending inside the mapping. Stops at the first word that is not one.
    public func mmappedChunks(start: UInt64, end: UInt64, pageSize: UInt64 = 4096) -> [Chunk] {
        var chunks: [Chunk] = []
        var chunk = start
        while chunk < end, end - chunk >= pageSize, chunks.count < chunkLimit,
              let previous = try? read(chunk), let field = try? read(chunk &+ 8) {
            let size = field & ~Layout.sizeFlags
            guard previous == 0, field & Layout.sizeFlags == Layout.isMmapped, size >= pageSize, size % pageSize == 0,
                  size <= end - chunk else { break }
            chunks.append(Chunk(address: chunk, size: size, mmapped: true))
            chunk += size
        }
        return chunks
    }
}
