import BTF

extension KernelLayout {
    /// SLUB's free lists: where a slab keeps its cache, its free list and its counters (`struct
    /// slab` overlays `struct page`), and what a cache says about its free pointers.
    public struct Slub: Sendable {
        public var slabCache = 0, slabFreelist = 0, slabCounters = 0
        public var cacheCPUSlab = 0, cacheSize = 0, cacheOffset = 0
        /// `kmem_cache.random` (CONFIG_SLAB_FREELIST_HARDENED: free pointers are stored encoded); nil without.
        public var cacheRandom: Int?
        public var cpuFreelist = 0, cpuSlab = 0

        init(btf: BTF) throws(BTFError) {
            func at(_ type: String, _ path: String) throws(BTFError) -> Int { try btf.member(type, path: path).offset }
            slabCache = try at("slab", "slab_cache")
            slabFreelist = try at("slab", "freelist")
            slabCounters = try at("slab", "counters")
            cacheCPUSlab = try at("kmem_cache", "cpu_slab")
            cacheSize = try at("kmem_cache", "size")
            cacheOffset = try at("kmem_cache", "offset")
            cacheRandom = try? at("kmem_cache", "random")
            cpuFreelist = try at("kmem_cache_cpu", "freelist")
            cpuSlab = try at("kmem_cache_cpu", "slab")
        }
    }
}
