extension GlibcHeapWalker {
    /// A thread arena whose heap holds its top chunk: its chunks run from `firstChunk` to `top`.
    public struct ThreadHeap: Equatable, Sendable {
        public var arena: UInt64
        public var firstChunk: UInt64
        public var end: UInt64
        public var top: UInt64

        public init(arena: UInt64, firstChunk: UInt64, end: UInt64, top: UInt64) {
            self.arena = arena
            self.firstChunk = firstChunk
            self.end = end
            self.top = top
        }
    }

    /// HEAP_MAX_SIZE on x86-64: a thread arena's heaps are mmapped at multiples of it.
    public static let threadHeapSize: UInt64 = 64 << 20

    /// The thread arenas on the main arena's `next` list (circular, back to `mainArena`), at most
    /// `limit`. Each must sit at the start of its heap (`heap_info.ar_ptr` names it); an arena
    /// whose top chunk lies in another heap than its first (it grew into a second heap) is
    /// skipped with a reason, as is one whose heap does not check out.
    public func threadHeaps(mainArena: UInt64, limit: Int = 64) throws(GlibcHeapError) -> (heaps: [ThreadHeap], skipped: [String]) {
        var heaps: [ThreadHeap] = []
        var skipped: [String] = []
        var seen: Set<UInt64> = [mainArena]
        var arena = try read(mainArena &+ Layout.arenaNext)
        while arena != mainArena {
            guard arena & 7 == 0, arena != 0 else { throw .misalignedFreeChunk(list: "arena list", address: arena) }
            guard seen.insert(arena).inserted else { throw .freeListLoops(list: "arena list", address: arena) }
            guard seen.count <= limit else { throw .freeListTooLong(list: "arena list", limit: limit) }
            if let heap = try threadHeap(arena: arena, skipped: &skipped) { heaps.append(heap) }
            arena = try read(arena &+ Layout.arenaNext)
        }
        return (heaps, skipped)
    }

    private func threadHeap(arena: UInt64, skipped: inout [String]) throws(GlibcHeapError) -> ThreadHeap? {
        func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
        let heap = arena & ~(Self.threadHeapSize - 1)
        // heap_info (ar_ptr, prev, size, mprotect_size, pagesize, pad) comes first, then the arena.
        guard arena - heap >= 32, arena - heap <= 64, try read(heap) == arena else {
            skipped.append("arena \(hex(arena)) is not at the start of a heap")
            return nil
        }
        let top = try read(arena &+ Layout.arenaTop)
        guard top & ~(Self.threadHeapSize - 1) == heap else {
            skipped.append("arena \(hex(arena)) has grown past its first heap (top \(hex(top)))")
            return nil
        }
        let size = try read(heap &+ 16)
        // The first chunk follows the arena, placed so that the memory it hands out is aligned.
        let first = ((arena &+ Layout.arenaSize &+ Layout.userOffset &+ Layout.alignment - 1) & ~(Layout.alignment - 1)) &- Layout.userOffset
        guard size <= Self.threadHeapSize, top < heap &+ size, first <= top else {
            skipped.append("arena \(hex(arena)): heap size \(hex(size)) and top \(hex(top)) do not fit")
            return nil
        }
        return ThreadHeap(arena: arena, firstChunk: first, end: heap &+ size, top: top)
    }
}
