/// glibc 2.36's malloc metadata on x86-64 (Debian 12), as `malloc/malloc.c` lays it out: chunk
/// headers, `struct malloc_state` (an arena), and `tcache_perthread_struct`.
public enum GlibcMallocLayout {
    /// The low bits of a chunk's size field: PREV_INUSE, IS_MMAPPED, NON_MAIN_ARENA.
    public static let sizeFlags: UInt64 = 7
    public static let previousInUse: UInt64 = 1
    public static let isMmapped: UInt64 = 2
    public static let nonMainArena: UInt64 = 4
    /// MALLOC_ALIGNMENT and MINSIZE.
    public static let alignment: UInt64 = 16
    public static let minimumChunk: UInt64 = 32
    /// From a chunk to the memory malloc returned (past prev_size and size).
    public static let userOffset: UInt64 = 16

    /// `struct malloc_state`: int mutex, int flags, int have_fastchunks, then (8-aligned)
    /// fastbinsY[10], top, last_remainder, bins[254], binmap[4], next, next_free, ...
    public static let arenaFastbins: UInt64 = 16
    public static let fastbinCount = 10
    public static let arenaTop: UInt64 = 96
    public static let arenaBins: UInt64 = 112
    /// Regular bins (bin 1, the unsorted bin, to 127), each a (fd, bk) pair in `bins`.
    public static let binPairs = 127
    /// `next`: the circular list of arenas, from the main arena through every thread arena.
    public static let arenaNext: UInt64 = 2160
    /// Bytes of `struct malloc_state` up to and including max_system_mem.
    public static let arenaSize: UInt64 = 2200

    /// `tcache_perthread_struct`: uint16_t counts[64], then tcache_entry *entries[64]; its chunk
    /// (the first of a thread's heap) has this size field (0x290 | PREV_INUSE).
    public static let tcacheBins = 64
    public static let tcacheEntries: UInt64 = 128
    public static let tcacheChunkSizeField: UInt64 = 0x291

    /// Safe-linking (glibc 2.32+): a free list's next pointer is stored as `(&field >> 12) ^ next`.
    public static func revealed(_ stored: UInt64, at field: UInt64) -> UInt64 { stored ^ (field >> 12) }
}
