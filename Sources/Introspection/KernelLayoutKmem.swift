import BTF
extension KernelLayout {
    /// What kernel allocation tracking reads: `struct tracepoint` (its static key and probe list),
    /// `struct kmem_cache` (SLUB/SLAB: name and object sizes) and `struct jump_entry`'s size.
    public struct Kmem: Sendable {
        public var tracepointKey = 0, tracepointFuncs = 0
        public var cacheName = 0, cacheObjectSize = 0, cacheSize = 0
        public var jumpEntrySize = 0

        init(btf: BTF) throws(BTFError) {
            func at(_ type: String, _ path: String) throws(BTFError) -> Int { try btf.member(type, path: path).offset }
            tracepointKey = try at("tracepoint", "key")
            tracepointFuncs = try at("tracepoint", "funcs")
            cacheName = try at("kmem_cache", "name")
            cacheObjectSize = try at("kmem_cache", "object_size")
            cacheSize = try at("kmem_cache", "size")
            jumpEntrySize = try btf.size(ofStructure: "jump_entry")
        }
    }
}
