/// The free slots SLUB's free lists name, and what walking them found.
struct SlubFreeSlots {
    var ranges: [Range<UInt64>] = []
    /// Free lists that ended early (a pointer outside its slab, a loop, more entries than objects).
    var brokenLists = 0
}

extension KernelView {
    /// Every free slot of the slabs in `slabs` (from the `struct page` walk): the chain of each
    /// slab's `freelist`, and of `kmem_cache_cpu.freelist` for the slab a CPU has taken. Free
    /// pointers are decoded as 6.1 stores them with CONFIG_SLAB_FREELIST_HARDENED (`ptr ^
    /// s->random ^ swab(address of the pointer)`). A free slot holds only stale data: it is no root.
    /// Every value is the guest's: a chain stops at the first pointer outside its slab, a repeat,
    /// or more entries than the slab has objects.
    func slubFreeSlots(of slabs: [(page: UInt64, range: Range<UInt64>)], limits: KernelRootLimits) throws(IntrospectionError) -> SlubFreeSlots {
        let l: KernelLayout.Slub
        switch kernel.layout.slub {
        case .success(let layout): l = layout
        case .failure(let error): throw .kernelImage("SLUB free lists: \(error)")
        }
        let bases = try possibleCPUOffsets(limits: limits).map(\.offset)

        struct Cache { var size: UInt64; var offset: UInt64; var random: UInt64?; var cpuLists: [UInt64: [UInt64]] }
        var caches: [UInt64: Cache?] = [:]
        func cache(at address: UInt64) -> Cache? {
            if let known = caches[address] { return known }
            let made = try? { () throws(IntrospectionError) -> Cache in
                let size = UInt64(try u32(try member(address, l.cacheSize, "kmem_cache.size"), "kmem_cache.size"))
                let offset = UInt64(try u32(try member(address, l.cacheOffset, "kmem_cache.offset"), "kmem_cache.offset"))
                let random = try l.cacheRandom.map { r throws(IntrospectionError) in try u64(try member(address, r, "kmem_cache.random"), "kmem_cache.random") }
                let perCPU = try u64(try member(address, l.cacheCPUSlab, "kmem_cache.cpu_slab"), "kmem_cache.cpu_slab")
                var lists: [UInt64: [UInt64]] = [:]
                for base in bases {
                    let cpu = base &+ perCPU
                    let slab = try u64(try member(cpu, l.cpuSlab, "kmem_cache_cpu.slab"), "kmem_cache_cpu.slab")
                    let head = try u64(try member(cpu, l.cpuFreelist, "kmem_cache_cpu.freelist"), "kmem_cache_cpu.freelist")
                    if slab != 0, head != 0 { lists[slab, default: []].append(head) }
                }
                return Cache(size: size, offset: offset, random: random, cpuLists: lists)
            }()
            caches[address] = .some(made)
            return made
        }

        var result = SlubFreeSlots()
        for slab in slabs {
            guard let cacheAddress = try? u64(try member(slab.page, l.slabCache, "slab.slab_cache"), "slab.slab_cache"),
                  cacheAddress >= KernelSymbols.kernelHalf, let c = cache(at: cacheAddress),
                  c.size >= 8, c.size <= slab.range.upperBound - slab.range.lowerBound, c.offset <= c.size - 8,
                  let counters = try? u64(try member(slab.page, l.slabCounters, "slab.counters"), "slab.counters"),
                  let own = try? u64(try member(slab.page, l.slabFreelist, "slab.freelist"), "slab.freelist") else { continue }
            let objects = Int((counters >> 16) & 0x7FFF)
            var seen = Set<UInt64>()
            for head in [own] + (c.cpuLists[slab.page] ?? []) {
                var p = head
                while p != 0 {
                    let (end, overflow) = p.addingReportingOverflow(c.size)
                    guard !overflow, p >= slab.range.lowerBound, end <= slab.range.upperBound, seen.count < objects,
                          seen.insert(p).inserted else {
                        result.brokenLists += 1
                        break
                    }
                    result.ranges.append(p..<end)
                    let slot = p &+ c.offset
                    guard let stored = try? u64(slot, "free pointer") else { break }
                    p = c.random.map { stored ^ $0 ^ slot.byteSwapped } ?? stored
                }
            }
        }
        return result
    }
}
