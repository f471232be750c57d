import DebugInfo

/// Anonymous memory that an allocator other than glibc's `[heap]` and arena heaps carves its
/// blocks from (jemalloc's extents, tcmalloc's spans, mimalloc's segments, glibc's main arena when
/// `brk` failed). Outside the live blocks it holds only the allocator's own free regions and
/// metadata: thread caches whose slots still name blocks they handed out, extent headers naming
/// the first region of each slab. None of that is a root, as glibc's free chunks are not.
///
/// Such a mapping is told by what it holds: a live block that is not a glibc mmapped chunk. glibc
/// gives every request above its mmap threshold its own mapping, which the kernel may merge with
/// the program's own anonymous memory; the program's pointers there stay roots.
public enum AllocatorArena {
    /// How many blocks of one mapping are checked before it is taken for glibc's mmapped chunks
    /// only (each is at least 128 KiB, so a mapping holds few).
    static let blocksChecked = 64

    /// Whether a block is a chunk glibc mapped for it alone: the chunk header right below the block
    /// says `IS_MMAPPED` (and not `NON_MAIN_ARENA`), its size covers the block, and with the offset
    /// in `prev_size` (nonzero after an aligned allocation) the chunk fills whole pages.
    public static func isGlibcMmappedChunk(block start: UInt64, size: UInt64, prevSize: UInt64, sizeWord: UInt64) -> Bool {
        let chunkBytes = sizeWord & ~7
        guard sizeWord & 0b110 == 0b010, start >= 16, size <= UInt64.max - 16, chunkBytes >= size + 16,
              prevSize <= start - 16 else { return false }
        let mapping = start - 16 - prevSize
        let (total, overflow) = chunkBytes.addingReportingOverflow(prevSize)
        return !overflow && mapping & 0xFFF == 0 && total & 0xFFF == 0
    }

    /// Whether the anonymous mapping `range` holds a live block that is not a glibc mmapped chunk.
    /// `header` gives the two words below a block (`prev_size`, `size`; nil when unreadable, which
    /// a glibc chunk never is).
    public static func holdsAllocatorBlocks(_ range: Range<UInt64>, blocks: HeapBlockIndex,
                                            header: (UInt64) -> (prevSize: UInt64, sizeWord: UInt64)?) -> Bool {
        for (checked, block) in blocks.indices(startingIn: range).enumerated() {
            guard checked < blocksChecked else { return false }
            let start = blocks.starts[block]
            guard let words = header(start),
                  isGlibcMmappedChunk(block: start, size: blocks.sizes[block], prevSize: words.prevSize, sizeWord: words.sizeWord)
            else { return true }
        }
        return false
    }
}

extension HeapBlockIndex {
    /// The indices of the blocks that start inside `range`.
    public func indices(startingIn range: Range<UInt64>) -> Range<Int> {
        let first = partitionPoint(count: starts.count) { starts[$0] < range.lowerBound }
        return first..<max(first, partitionPoint(count: starts.count) { starts[$0] < range.upperBound })
    }
}
