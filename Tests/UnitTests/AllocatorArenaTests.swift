@testable import Reachability
import Testing

/// Which anonymous mappings are an allocator's own memory (not roots): those holding a live block
/// that is not a glibc mmapped chunk.
@Suite struct AllocatorArenaTests {
    @Test func glibcMmappedChunksAreRecognizedByTheirHeader() {
        // malloc(200000): a mapping at 0x7F00_0000_0000, chunk of 0x31000 bytes, IS_MMAPPED.
        #expect(AllocatorArena.isGlibcMmappedChunk(block: 0x7F00_0000_0010, size: 200_000, prevSize: 0, sizeWord: 0x31002))
        // posix_memalign(4096, 200000): the chunk starts 0xFF0 into its mapping, prev_size says so.
        #expect(AllocatorArena.isGlibcMmappedChunk(block: 0x7F00_0000_1000, size: 190_000, prevSize: 0xFF0, sizeWord: 0x30012))
        // Not mmapped, or a thread arena's chunk, or a chunk too small for the block, or not whole pages.
        #expect(!AllocatorArena.isGlibcMmappedChunk(block: 0x7F00_0000_0010, size: 200_000, prevSize: 0, sizeWord: 0x31001))
        #expect(!AllocatorArena.isGlibcMmappedChunk(block: 0x7F00_0000_0010, size: 200_000, prevSize: 0, sizeWord: 0x31006))
        #expect(!AllocatorArena.isGlibcMmappedChunk(block: 0x7F00_0000_0010, size: 200_000, prevSize: 0, sizeWord: 0x1002))
        #expect(!AllocatorArena.isGlibcMmappedChunk(block: 0x7F00_0000_0010, size: 200_000, prevSize: 0, sizeWord: 0x31802))
        #expect(!AllocatorArena.isGlibcMmappedChunk(block: 0x7F00_0000_0030, size: 100, prevSize: 0, sizeWord: 0x1002))
        // Hostile words: an offset past the block, sizes that would wrap.
        #expect(!AllocatorArena.isGlibcMmappedChunk(block: 0x10, size: 16, prevSize: 0x1000, sizeWord: 0x1002))
        #expect(!AllocatorArena.isGlibcMmappedChunk(block: 0x1010, size: .max, prevSize: 0, sizeWord: .max))
        #expect(!AllocatorArena.isGlibcMmappedChunk(block: 0x1010, size: 16, prevSize: 0, sizeWord: .max & ~5))
        #expect(!AllocatorArena.isGlibcMmappedChunk(block: 8, size: 16, prevSize: 0, sizeWord: 0x1002))
    }

    @Test func aMappingWithAnotherAllocatorsBlockIsAnArena() {
        // jemalloc: small regions in one extent; the words below them are the previous region's data.
        let blocks = HeapBlockIndex(blocks: [(0x7F00_0022_0030, 48), (0x7F00_0021_F020, 24), (0x7F00_0030_0010, 200_000)])
        let data: [UInt64: (UInt64, UInt64)] = [0x7F00_0021_F020: (0xA5A5_A5A5_A5A5_A5A5, 0xA5A5_A5A5_A5A5_A5A5),
                                                0x7F00_0022_0030: (0, 0), 0x7F00_0030_0010: (0, 0x31002)]
        #expect(AllocatorArena.holdsAllocatorBlocks(0x7F00_0000_0000..<0x7F00_0080_0000, blocks: blocks, header: { data[$0] }))
        // The glibc mmapped chunk alone (the kernel merged its mapping with the program's): not an arena.
        #expect(!AllocatorArena.holdsAllocatorBlocks(0x7F00_002F_0000..<0x7F00_0040_0000, blocks: blocks, header: { data[$0] }))
        // No block at all, or an unreadable header (which a glibc chunk never has).
        #expect(!AllocatorArena.holdsAllocatorBlocks(0x7F00_0040_0000..<0x7F00_0080_0000, blocks: blocks, header: { data[$0] }))
        #expect(AllocatorArena.holdsAllocatorBlocks(0x7F00_002F_0000..<0x7F00_0040_0000, blocks: blocks, header: { _ in nil }))
    }

    @Test func blocksStartingInARange() {
        let index = HeapBlockIndex(blocks: [(0x1000, 0x100), (0x1200, 0x10), (0x2000, 0x40000)])
        #expect(index.indices(startingIn: 0x0..<0x1000) == 0..<0)
        #expect(index.indices(startingIn: 0x1000..<0x1201) == 0..<2)
        #expect(index.indices(startingIn: 0x1001..<0x3000) == 1..<3)
        #expect(index.indices(startingIn: 0x3000..<0x4000) == 3..<3)
        #expect(HeapBlockIndex(blocks: []).indices(startingIn: 0..<(.max)) == 0..<0)
    }
}
