import GuestMemory
import X86

/// What the vmalloc walk found: areas to scan, areas skipped, and the frames behind them.
struct VmallocWalk {
    var ranges: [Range<UInt64>] = []
    var skipped = 0
    var backingFrames = Set<UInt64>()
    /// Addresses of `vmap_area.va_start` and `vm_struct.addr` of every area: the kernel's own
    /// record of where each area starts, not a reference (kmemleak's `min_count` 2 for vmalloc).
    var bookkeepingWords: [UInt64] = []
}

/// What the `struct page` walk found: slab pages and other kernel-owned pages, in the direct map.
struct PageWalk {
    var slab: [Range<UInt64>] = []
    /// Each slab: the address of its `struct page` (its `struct slab`) and its memory.
    var slabs: [(page: UInt64, range: Range<UInt64>)] = []
    var kernel: [Range<UInt64>] = []
    var census = KernelPageCensus()
    var freeFrames: [UInt64] = []
}

extension KernelView {
    static let vmIORemap: UInt64 = 0x1, vmNoGuard: UInt64 = 0x40

    func rootsLayout() throws(IntrospectionError) -> KernelLayout.Roots {
        switch kernel.layout.roots {
        case .success(let layout): return layout
        case .failure(let error): throw .layout(error)
        }
    }

    /// Run-time start of the direct map (`page_offset_base`, CONFIG_RANDOMIZE_MEMORY).
    public func directMapBase() throws(IntrospectionError) -> UInt64 {
        let base = try u64(try symbol("page_offset_base").rawValue, "page_offset_base")
        guard base >= 0xFFFF_8000_0000_0000, base & 0x3FFF_FFFF == 0 else {
            throw .inconsistent("page_offset_base is 0x\(String(base, radix: 16)), not a 1 GiB-aligned kernel address")
        }
        return base
    }

    /// The stacks of exited tasks that `kernel/fork.c` keeps for reuse (per-CPU `cached_stacks`,
    /// `NR_CACHED_STACKS` = 2 `vm_struct` pointers): dead memory whose stale contents would keep
    /// objects "reachable"; their start addresses. Empty when the kernel has no such variable.
    func cachedStackAreas(limits: KernelRootLimits) throws(IntrospectionError) -> Set<UInt64> {
        guard let variable = kernel.symbols.perCPUOffset(of: "cached_stacks") else { return [] }
        let l = try rootsLayout()
        var areas = Set<UInt64>()
        for (_, base) in try possibleCPUOffsets(limits: limits) {
            for vm in try words(try member(base, Int(truncatingIfNeeded: variable), "cached_stacks"), 2, "cached_stacks") where vm != 0 {
                areas.insert(try u64(try member(vm, l.vmAddress, "vm_struct.addr"), "vm_struct.addr of a cached stack"))
            }
        }
        return areas
    }

    /// The `va_start` and `va_end` words of every `vmap_area` on the lists of free and of lazily
    /// freed ranges (`free_vmap_area_list`, `purge_vmap_area_list`): where ranges begin and end,
    /// which equal the start of a busy area next to them. Lists the kernel lacks are skipped.
    func freeVmapAreaWords(limits: KernelRootLimits) throws(IntrospectionError) -> [UInt64] {
        let l = try rootsLayout()
        var words: [UInt64] = []
        for name in ["free_vmap_area_list", "purge_vmap_area_list"] {
            guard let head = try? symbol(name).rawValue else { continue }
            var link = try kernelPointer(head, "\(name).next")
            var seen = 0
            while link != head {
                seen += 1
                guard seen <= limits.maximumVmallocAreas * 4 else { throw .inconsistent("\(name) loops or is too long") }
                let area = link &- UInt64(l.areaList)
                words.append(try member(area, l.areaStart, "vmap_area.va_start"))
                words.append(try member(area, l.areaEnd, "vmap_area.va_end"))
                link = try kernelPointer(link, "vmap_area.list.next")
            }
        }
        return words
    }

    /// Every busy vmalloc area on `vmap_area_list`, as roots: the area of its `vm_struct` less the
    /// guard page, or the `vmap_area` itself when it has none (vm_map_ram). Skipped: I/O
    /// mappings (not RAM) and the task stacks in `stackBases` (their live part is a root already).
    /// The frames behind each area (its `vm_struct.pages`) are collected so that the page walk
    /// does not count them a second time through the direct map.
    func vmallocRoots(skipping stackBases: Set<UInt64>, limits: KernelRootLimits) throws(IntrospectionError) -> VmallocWalk {
        let l = try rootsLayout()
        let vmemmap = try PageCacheLocator.vmemmapBase(of: self)
        let head = try symbol("vmap_area_list").rawValue
        var walk = VmallocWalk()
        var link = try kernelPointer(head, "vmap_area_list.next")
        var seen = Set<UInt64>()
        while link != head {
            guard seen.insert(link).inserted, seen.count <= limits.maximumVmallocAreas else {
                throw .inconsistent("vmap_area_list loops or exceeds \(limits.maximumVmallocAreas) entries")
            }
            let area = link &- UInt64(l.areaList)
            let start = try u64(try member(area, l.areaStart, "vmap_area.va_start"), "vmap_area.va_start")
            let end = try u64(try member(area, l.areaEnd, "vmap_area.va_end"), "vmap_area.va_end")
            let vm = try u64(try member(area, l.areaVM, "vmap_area.vm"), "vmap_area.vm")
            walk.bookkeepingWords.append(try member(area, l.areaStart, "vmap_area.va_start"))
            walk.bookkeepingWords.append(try member(area, l.areaEnd, "vmap_area.va_end"))
            link = try kernelPointer(link, "vmap_area.list.next")
            guard start < end, end - start <= limits.maximumAreaBytes, start >= 0xFFFF_8000_0000_0000 else {
                throw .inconsistent("vmap_area 0x\(String(area, radix: 16)) spans 0x\(String(start, radix: 16))..0x\(String(end, radix: 16))")
            }
            guard vm != 0 else {
                walk.ranges.append(start..<end)
                continue
            }
            let address = try u64(try member(vm, l.vmAddress, "vm_struct.addr"), "vm_struct.addr")
            walk.bookkeepingWords.append(try member(vm, l.vmAddress, "vm_struct.addr"))
            var size = try u64(try member(vm, l.vmSize, "vm_struct.size"), "vm_struct.size")
            let flags = try u64(try member(vm, l.vmFlags, "vm_struct.flags"), "vm_struct.flags")
            if flags & Self.vmNoGuard == 0, size >= 4096 { size -= 4096 }
            guard address >= start, address < end, size <= end - address else {
                throw .inconsistent("vm_struct 0x\(String(vm, radix: 16)) at 0x\(String(address, radix: 16)) (+\(size)) is outside its vmap_area")
            }
            let pages = try u64(try member(vm, l.vmPages, "vm_struct.pages"), "vm_struct.pages")
            let count = UInt64(try u32(try member(vm, l.vmPageCount, "vm_struct.nr_pages"), "vm_struct.nr_pages"))
            if pages != 0, count > 0 {
                guard count <= limits.maximumAreaPages else { throw .inconsistent("vm_struct 0x\(String(vm, radix: 16)) has \(count) pages") }
                for page in try words(pages, Int(count), "vm_struct.pages") where page >= vmemmap && l.pageSize > 0 {
                    let offset = page &- vmemmap
                    if offset % UInt64(l.pageSize) == 0 { walk.backingFrames.insert(offset / UInt64(l.pageSize)) }
                }
            }
            if flags & Self.vmIORemap != 0 || stackBases.contains(address) {
                walk.skipped += 1
                continue
            }
            if size > 0 { walk.ranges.append(address..<address + size) }
        }
        return walk
    }

    /// Walks the `struct page` of every frame of guest RAM (the host knows where RAM is) in
    /// batched reads of the vmemmap, and sorts frames into slab pages, free pages, user pages and
    /// kernel-owned pages (the rule is in docs/reachability.md). Slab and kernel-owned pages are
    /// returned as direct-map ranges, adjacent frames merged; `excluded` frames are not roots.
    func pageRoots(excluding excluded: Set<UInt64>) throws(IntrospectionError) -> PageWalk {
        let l = try rootsLayout()
        let wordFields = [l.pageFlags, l.pageMapping, l.pageCompoundHead], halfFields = [l.pageRefCount, l.pageType]
        guard l.pageSize >= 64, l.pageSize <= 256, l.pageSize % 8 == 0, l.folioOrder >= l.pageSize, l.folioOrder < 2 * l.pageSize,
              wordFields.allSatisfy({ $0 >= 0 && $0 + 8 <= l.pageSize }), halfFields.allSatisfy({ $0 >= 0 && $0 + 4 <= l.pageSize }),
              [l.slabBit, l.reservedBit, l.lruBit, l.headBit].allSatisfy({ $0 >= 0 && $0 < 64 }) else {
            throw .kernelImage("struct page layout out of range")
        }
        let vmemmap = try PageCacheLocator.vmemmapBase(of: self)
        let directMap = try directMapBase()
        let top = memory.regions.map(\.end.rawValue).max() ?? 0
        guard !directMap.addingReportingOverflow(top).overflow, !vmemmap.addingReportingOverflow((top >> 12) &* 256).overflow else {
            throw .inconsistent("the direct map at 0x\(String(directMap, radix: 16)) or the vmemmap cannot hold guest RAM")
        }
        let stride = UInt64(l.pageSize)
        var walk = PageWalk()
        var slab = RangeCollector(), owned = RangeCollector()
        let batch: UInt64 = 16384
        for region in memory.regions {
            let first = (region.start.rawValue + 4095) >> 12, end = region.end.rawValue >> 12
            var frame = first
            var buffer: [UInt8] = [], bufferFirst: UInt64 = 0
            func load(_ f: UInt64) throws(IntrospectionError) {
                let count = min(batch, end - f)
                let bytes = Int(count * stride)
                buffer = try self.bytes(vmemmap &+ f &* stride, bytes, "struct page of frames 0x\(String(f, radix: 16))+\(count)")
                bufferFirst = f
            }
            func field(_ f: UInt64, _ offset: Int, width: Int) -> UInt64 {
                let at = Int(f - bufferFirst) * l.pageSize + offset
                var value: UInt64 = 0
                for i in 0..<width { value |= UInt64(buffer[at + i]) << UInt64(8 * i) }
                return value
            }
            while frame < end {
                if buffer.isEmpty || frame - bufferFirst >= UInt64(buffer.count) / stride { try load(frame) }
                let flags = field(frame, l.pageFlags, width: 8)
                let compound = field(frame, l.pageCompoundHead, width: 8)
                if compound & 1 == 1 {
                    // A tail whose head lies before guest RAM's region start: not ours to judge.
                    walk.census.user += 1
                    walk.census.frames += 1
                    frame += 1
                    continue
                }
                var extent: UInt64 = 1
                if flags >> UInt64(l.headBit) & 1 == 1 {
                    let orderAt = vmemmap &+ frame &* stride &+ UInt64(l.folioOrder)
                    let order = UInt64(try self.bytes(orderAt, 1, "folio._folio_order")[0])
                    guard order >= 1, order <= 18 else {
                        throw .inconsistent("compound page at frame 0x\(String(frame, radix: 16)) has order \(order)")
                    }
                    extent = min(1 << order, end - frame)
                }
                walk.census.frames += Int(extent)
                let refCount = UInt32(truncatingIfNeeded: field(frame, l.pageRefCount, width: 4))
                let pageType = UInt32(truncatingIfNeeded: field(frame, l.pageType, width: 4))
                let mapping = field(frame, l.pageMapping, width: 8)
                let range = directMap &+ (frame << 12) ..< directMap &+ ((frame + extent) << 12)
                if flags >> UInt64(l.slabBit) & 1 == 1 {
                    walk.census.slab += Int(extent)
                    slab.add(range)
                    walk.slabs.append((vmemmap &+ frame &* stride, range))
                } else if refCount == 0 {
                    walk.census.free += Int(extent)
                    if walk.freeFrames.count == 256 { walk.freeFrames.removeFirst(128) }
                    walk.freeFrames.append(frame)
                } else if Self.hasPageType(pageType) || flags >> UInt64(l.lruBit) & 1 == 1 || mapping != 0 {
                    walk.census.user += Int(extent)
                } else {
                    for f in frame..<frame + extent {
                        if excluded.contains(f) {
                            walk.census.excluded += 1
                        } else {
                            walk.census.kernel += 1
                            owned.add(directMap &+ (f << 12) ..< directMap &+ ((f + 1) << 12))
                        }
                    }
                }
                frame += extent
            }
        }
        walk.slab = slab.ranges
        walk.kernel = owned.ranges
        return walk
    }

    /// Whether a `page_type` names a type (6.1: PAGE_TYPE_BASE 0xf0000000 with one of PG_buddy
    /// 0x80, PG_offline 0x100, PG_table 0x200, PG_guard 0x400 cleared); otherwise it is a map count.
    static func hasPageType(_ value: UInt32) -> Bool {
        value & 0xF000_0000 == 0xF000_0000 && value & 0x780 != 0x780
    }
}

/// Collects ranges in ascending order, merging each with the previous one when they touch.
struct RangeCollector {
    private(set) var ranges: [Range<UInt64>] = []

    mutating func add(_ range: Range<UInt64>) {
        guard !range.isEmpty else { return }
        if let last = ranges.last, last.upperBound == range.lowerBound {
            ranges[ranges.count - 1] = last.lowerBound..<range.upperBound
        } else {
            ranges.append(range)
        }
    }
}
