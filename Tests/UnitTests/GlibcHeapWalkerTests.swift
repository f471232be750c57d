import AllocationTracing
import Testing

/// Guest memory made of a few byte regions at virtual addresses; any other word is unreadable.
private struct CraftedHeapMemory {
    var regions: [(base: UInt64, bytes: [UInt8])] = []

    mutating func region(at base: UInt64, size: Int) { regions.append((base, [UInt8](repeating: 0, count: size))) }

    mutating func store(_ value: UInt64, at address: UInt64) {
        guard let index = regions.firstIndex(where: { address >= $0.base && address - $0.base + 8 <= UInt64($0.bytes.count) }) else {
            Issue.record("no region holds 0x\(String(address, radix: 16))")
            return
        }
        let offset = Int(address - regions[index].base)
        for byte in 0..<8 { regions[index].bytes[offset + byte] = UInt8(truncatingIfNeeded: value >> (8 * byte)) }
    }

    func word(_ address: UInt64) throws(GlibcHeapError) -> UInt64 {
        for region in regions where address >= region.base && address - region.base <= UInt64(region.bytes.count) &- 8 {
            let offset = Int(address - region.base)
            return (0..<8).reduce(0) { $0 | UInt64(region.bytes[offset + $1]) << (8 * $1) }
        }
        throw .unreadable(address: address)
    }

    var walker: GlibcHeapWalker {
        let memory = self
        return GlibcHeapWalker { (address) throws(GlibcHeapError) in try memory.word(address) }
    }
}

/// A small valid main heap as glibc 2.36 leaves it, with its arena: the tcache struct, chunk A in
/// use, B in use but in a tcache bin, C free (unsorted), D in use but in a fastbin, then top.
private struct ValidHeap {
    static let heap: UInt64 = 0x5555_5555_9000
    static let heapSize = 0x1000
    static let arena: UInt64 = 0x7F00_0000_2000
    static let (tcache, a, b, c, d, top) = (heap, heap + 0x290, heap + 0x2B0, heap + 0x2E0, heap + 0x320, heap + 0x340)
    var memory = CraftedHeapMemory()

    init() {
        memory.region(at: Self.heap, size: Self.heapSize)
        memory.region(at: Self.arena - 0x100, size: 0x1000)
        memory.store(0x291, at: Self.tcache + 8)
        memory.store(0x21, at: Self.a + 8)
        memory.store(0x31, at: Self.b + 8)
        memory.store(0x41, at: Self.c + 8)
        memory.store(0x20, at: Self.d + 8)          // C is free: D's PREV_INUSE is clear
        memory.store(0x40, at: Self.d)              // prev_size of a free predecessor
        memory.store((Self.heap + UInt64(Self.heapSize) - Self.top) | 1, at: Self.top + 8)
        // tcache bin 1 (chunks of 0x30) holds B; its next is null, safe-linked.
        memory.store(1, at: Self.tcache + 16)
        memory.store(Self.b + 16, at: Self.tcache + 16 + 128 + 8)
        memory.store((Self.b + 16) >> 12, at: Self.b + 16)
        // The arena: fastbin 0 holds D (null next, safe-linked), top, and 127 empty bins.
        memory.store(Self.d, at: Self.arena + 16)
        memory.store((Self.d + 16) >> 12, at: Self.d + 16)
        memory.store(Self.top, at: Self.arena + 96)
        for pair in 0..<127 {
            let field = Self.arena + 112 + UInt64(pair) * 16
            memory.store(field - 16, at: field)
            memory.store(field - 16, at: field + 8)
        }
    }
}

struct GlibcHeapWalkerTests {
    let end = ValidHeap.heap + UInt64(ValidHeap.heapSize)

    @Test func walksAValidHeapToItsTop() throws {
        let walker = ValidHeap().memory.walker
        let walk = try walker.walkHeap(start: ValidHeap.heap, end: end)
        #expect(walk.inUse.map(\.address) == [ValidHeap.tcache, ValidHeap.a, ValidHeap.b, ValidHeap.d])
        #expect(walk.top == ValidHeap.top)
        #expect(walk.freeChunks == 1)
        // The arena's top gives the same walk.
        #expect(try walker.walkHeap(start: ValidHeap.heap, end: end, top: ValidHeap.top) == walk)
        let a = try #require(walk.inUse.first { $0.address == ValidHeap.a })
        #expect(a.userAddress == ValidHeap.a + 16 && a.usableSize == 0x18)
    }

    @Test func findsTheFirstChunkAfterAStaticProgramsTLSBlock() throws {
        // A static program's startup takes the heap's first bytes (its TLS block) with sbrk: the
        // heap proper starts at the tcache struct further on.
        var memory = CraftedHeapMemory()
        let start = ValidHeap.heap - 0x1000
        memory.region(at: start, size: 0x1000)
        memory.store(0x1234_5678, at: start + 0x10)
        let valid = ValidHeap().memory
        memory.regions += valid.regions
        let walker = memory.walker
        let candidates = walker.firstChunkCandidates(start: start, end: end)
        #expect(candidates == [start, ValidHeap.tcache])
        let walk = try walker.walkHeap(candidates: candidates, end: end)
        #expect(walk.inUse.first?.address == ValidHeap.tcache && walk.top == ValidHeap.top)
        // No candidate walks: the error of the mapping's start.
        #expect(throws: GlibcHeapError.chunkTooSmall(address: start, size: 0)) { try walker.walkHeap(candidates: [start], end: end) }
    }

    @Test func findsTheFreeChunksThatLookInUse() throws {
        let walker = ValidHeap().memory.walker
        #expect(try walker.tcacheChunks(structChunk: ValidHeap.tcache) == [ValidHeap.b])
        let arena = try #require(walker.findArena(in: (ValidHeap.arena - 0x100)..<(ValidHeap.arena + 0xF00), top: ValidHeap.top))
        #expect(arena == ValidHeap.arena)
        #expect(try walker.fastbinChunks(arena: arena) == [ValidHeap.d])
        // Another top is not this arena's.
        #expect(walker.findArena(in: (ValidHeap.arena - 0x100)..<(ValidHeap.arena + 0xF00), top: ValidHeap.a) == nil)
    }

    @Test func hostileSizesAreTypedErrors() throws {
        func walk(_ edit: (inout CraftedHeapMemory) -> Void, top: UInt64? = nil) -> GlibcHeapError? {
            var heap = ValidHeap()
            edit(&heap.memory)
            do {
                _ = try heap.memory.walker.walkHeap(start: ValidHeap.heap, end: end, top: top)
                return nil
            } catch { return error }
        }
        // A zero size would walk in place forever.
        #expect(walk { $0.store(0x1, at: ValidHeap.a + 8) } == .chunkTooSmall(address: ValidHeap.a, size: 0))
        #expect(walk { $0.store(0xFFFF_FFFF_FFFF_FFF1, at: ValidHeap.a + 8) }
                == .chunkWraps(address: ValidHeap.a, size: 0xFFFF_FFFF_FFFF_FFF0))
        #expect(walk { $0.store(0x10001, at: ValidHeap.a + 8) } == .chunkPastEnd(address: ValidHeap.a, size: 0x10000, end: end))
        #expect(walk { $0.store(0x29, at: ValidHeap.a + 8) } == .misalignedSize(address: ValidHeap.a, size: 0x28))
        #expect(walk { $0.store(0x23, at: ValidHeap.a + 8) } == .mmappedChunkInHeap(address: ValidHeap.a))
        // A top that is no chunk boundary is walked past; one outside the heap is refused.
        #expect(walk({ _ in }, top: ValidHeap.top + 0x10) == .walkedPastTop(address: end, top: ValidHeap.top + 0x10))
        #expect(walk({ _ in }, top: end) == .topNotInHeap(top: end))
        #expect(throws: GlibcHeapError.misalignedChunk(address: ValidHeap.heap + 8)) {
            try ValidHeap().memory.walker.walkHeap(start: ValidHeap.heap + 8, end: end)
        }
        // A heap mapping larger than the readable memory: unreadable, not a trap.
        var short = ValidHeap()
        short.memory.store(0x2000 | 1, at: ValidHeap.top + 8)
        #expect(throws: GlibcHeapError.unreadable(address: end + 0x1348)) {
            try short.memory.walker.walkHeap(start: ValidHeap.heap, end: end + 0x2000)
        }
        // A bounded walk.
        var walker = ValidHeap().memory.walker
        walker.chunkLimit = 2
        #expect(throws: GlibcHeapError.tooManyChunks(limit: 2)) { try walker.walkHeap(start: ValidHeap.heap, end: end) }
    }

    @Test func hostileFreeListsAreTypedErrors() throws {
        // B's next points back at B (safe-linked): a loop.
        var looping = ValidHeap()
        looping.memory.store((ValidHeap.b + 16) ^ ((ValidHeap.b + 16) >> 12), at: ValidHeap.b + 16)
        #expect(throws: GlibcHeapError.freeListLoops(list: "tcache bin 1", address: ValidHeap.b + 16)) {
            try looping.memory.walker.tcacheChunks(structChunk: ValidHeap.tcache)
        }
        var misaligned = ValidHeap()
        misaligned.memory.store(ValidHeap.b + 17, at: ValidHeap.tcache + 16 + 128 + 8)
        #expect(throws: GlibcHeapError.misalignedFreeChunk(list: "tcache bin 1", address: ValidHeap.b + 17)) {
            try misaligned.memory.walker.tcacheChunks(structChunk: ValidHeap.tcache)
        }
        // A fastbin chain D → A → C longer than the limit, and one into unreadable memory.
        var long = ValidHeap()
        long.memory.store(ValidHeap.a ^ ((ValidHeap.d + 16) >> 12), at: ValidHeap.d + 16)
        long.memory.store(ValidHeap.c ^ ((ValidHeap.a + 16) >> 12), at: ValidHeap.a + 16)
        long.memory.store((ValidHeap.c + 16) >> 12, at: ValidHeap.c + 16)
        var limited = long.memory.walker
        #expect(try limited.fastbinChunks(arena: ValidHeap.arena) == [ValidHeap.d, ValidHeap.a, ValidHeap.c])
        limited.chunkLimit = 2
        #expect(throws: GlibcHeapError.freeListTooLong(list: "fastbin 0", limit: 2)) { try limited.fastbinChunks(arena: ValidHeap.arena) }
        var wild = ValidHeap()
        wild.memory.store(0x10 ^ ((ValidHeap.d + 16) >> 12), at: ValidHeap.d + 16)
        #expect(throws: GlibcHeapError.unreadable(address: 0x20)) { try wild.memory.walker.fastbinChunks(arena: ValidHeap.arena) }
    }

    @Test func walksASingleHeapThreadArena() throws {
        let heap: UInt64 = 0x7F00_0400_0000, arena: UInt64 = 0x7F00_0400_0030
        let first = heap + 2256, top = heap + 2256 + 0x50
        func threaded(_ edit: (inout CraftedHeapMemory) -> Void = { _ in }) -> CraftedHeapMemory {
            var memory = ValidHeap().memory
            memory.region(at: heap, size: 0x2000)
            memory.store(arena, at: ValidHeap.arena + 2160)     // main arena → thread arena → main arena
            memory.store(ValidHeap.arena, at: arena + 2160)
            memory.store(arena, at: heap)                       // heap_info.ar_ptr
            memory.store(0x21000, at: heap + 16)                // heap_info.size
            memory.store(top, at: arena + 96)
            memory.store(0x25, at: first + 8)                   // 0x20, NON_MAIN_ARENA | PREV_INUSE
            memory.store(0x35, at: first + 0x28)
            memory.store((heap + 0x21000 - top) | 5, at: top + 8)
            edit(&memory)
            return memory
        }
        let found = try threaded().walker.threadHeaps(mainArena: ValidHeap.arena)
        #expect(found.heaps == [.init(arena: arena, firstChunk: first, end: heap + 0x21000, top: top)] && found.skipped.isEmpty)
        let walk = try threaded().walker.walkHeap(start: first, end: heap + 0x21000, top: top)
        #expect(walk.inUse.map(\.address) == [first, first + 0x20] && walk.inUse.map(\.size) == [0x20, 0x30])
        // Hostile: a list that loops, an arena that is not its heap's, a top in another heap.
        #expect(throws: GlibcHeapError.freeListLoops(list: "arena list", address: arena)) {
            try threaded { $0.store(arena, at: arena + 2160) }.walker.threadHeaps(mainArena: ValidHeap.arena)
        }
        #expect(try threaded { $0.store(0, at: heap) }.walker.threadHeaps(mainArena: ValidHeap.arena).skipped.count == 1)
        #expect(try threaded { $0.store(top + (64 << 20), at: arena + 96) }.walker.threadHeaps(mainArena: ValidHeap.arena).heaps.isEmpty)
        #expect(throws: GlibcHeapError.misalignedFreeChunk(list: "arena list", address: 3)) {
            try threaded { $0.store(3, at: arena + 2160) }.walker.threadHeaps(mainArena: ValidHeap.arena)
        }
    }

    @Test func arenaSearchIsBoundedAndStrict() throws {
        let walker = ValidHeap().memory.walker
        // Ranges at the top of the address space or too small for an arena: nothing, no trap.
        #expect(walker.findArena(in: (UInt64.max - 0x100)..<UInt64.max, top: ValidHeap.top) == nil)
        #expect(walker.findArena(in: ValidHeap.arena..<(ValidHeap.arena + 0x100), top: ValidHeap.top) == nil)
        // A bin with one null link is no arena's.
        var broken = ValidHeap()
        broken.memory.store(0, at: ValidHeap.arena + 112 + 8)
        #expect(try broken.memory.walker.isArena(at: ValidHeap.arena, top: ValidHeap.top) == false)
    }

    @Test func findsBackToBackMmappedChunks() {
        var memory = CraftedHeapMemory()
        let start: UInt64 = 0x7F00_1000_0000
        memory.region(at: start, size: 0x5000)
        memory.store(0x2002, at: start + 8)
        memory.store(0x1002, at: start + 0x2008)
        memory.store(0x1003, at: start + 0x3008)   // PREV_INUSE is never set on an mmapped chunk: stop
        let chunks = memory.walker.mmappedChunks(start: start, end: start + 0x5000)
        #expect(chunks == [.init(address: start, size: 0x2000, mmapped: true), .init(address: start + 0x2000, size: 0x1000, mmapped: true)])
        #expect(chunks.first?.usableSize == 0x2000 - 16)
        // A size past the mapping, or a wrapping one, is not a chunk.
        var wrapping = CraftedHeapMemory()
        wrapping.region(at: start, size: 0x1000)
        wrapping.store(0xFFFF_FFFF_FFFF_F002, at: start + 8)
        #expect(wrapping.walker.mmappedChunks(start: start, end: start + 0x1000).isEmpty)
    }
}
