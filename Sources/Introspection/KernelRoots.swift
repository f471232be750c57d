import X86

/// Bounds on what the kernel root enumeration accepts from the guest.
public struct KernelRootLimits: Sendable {
    /// Most CPUs whose per-CPU unit is read (x86-64's NR_CPUS maximum).
    public var maximumCPUs = 8192
    /// Largest per-CPU unit accepted.
    public var maximumUnitBytes: UInt64 = 64 << 20
    /// Most vmalloc areas walked.
    public var maximumVmallocAreas = 1 << 20
    /// Largest vmalloc area accepted (bytes) and most backing pages read per area.
    public var maximumAreaBytes: UInt64 = 64 << 30
    public var maximumAreaPages: UInt64 = 1 << 24

    public init() {}
}

extension KernelView {
    /// x86-64 THREAD_SIZE without KASAN (THREAD_SIZE_ORDER 2), used when the image lacks
    /// `__start_init_task`/`__end_init_task` to measure it.
    public static let defaultThreadSize: UInt64 = 16 << 10

    /// The roots of the guest kernel at this pause (see `KernelRootRange.Kind`). Never throws:
    /// what cannot be enumerated is listed in `problems`, and a scan over such a set reports nothing new.
    public func kernelRoots(limits: KernelRootLimits = KernelRootLimits()) -> KernelRootSet {
        var roots = KernelRootSet()
        for cpu in vcpus { roots.registerWords += cpu.registers.generalPurpose }
        func attempt(_ what: String, _ body: () throws(IntrospectionError) -> Void) {
            do { try body() } catch { roots.problems.append("\(what): \(error)") }
        }
        attempt("kernel image data") { () throws(IntrospectionError) in roots.ranges += try imageDataRoots() }
        var excludedFrames = Set<UInt64>()
        attempt("kernel image frames") { () throws(IntrospectionError) in
            let start = try symbol("_text").rawValue, end = try symbol("_end").rawValue
            guard start < end, end - start <= 1 << 30 else { throw .inconsistent("kernel image _text..._end is not a range") }
            try frames(of: start..<end, into: &excludedFrames)
        }
        attempt("per-CPU areas") { () throws(IntrospectionError) in
            let units = try perCPURoots(limits: limits)
            roots.perCPUUnits = units.count
            for unit in units {
                roots.ranges.append(KernelRootRange(unit, .perCPU))
                try frames(of: unit, into: &excludedFrames)
            }
        }
        var stackBases = Set<UInt64>()
        attempt("task stacks") { () throws(IntrospectionError) in
            let stacks = try stackRoots()
            roots.stacks = stacks.count
            for s in stacks {
                stackBases.insert(s.base)
                if !s.live.isEmpty { roots.ranges.append(KernelRootRange(s.live, .taskStack)) }
            }
        }
        attempt("vmalloc areas") { () throws(IntrospectionError) in
            // Cached stacks of exited tasks are dead memory, not roots (they stay vmalloc areas).
            let cached = (try? cachedStackAreas(limits: limits)) ?? []
            roots.cachedStacks = cached.count
            let size = threadSize()
            roots.cachedStackRanges = cached.sorted().map { $0..<$0 &+ size }
            let walk = try vmallocRoots(skipping: stackBases.union(cached), limits: limits)
            roots.ranges += walk.ranges.map { KernelRootRange($0, .vmallocArea) }
            roots.vmallocAreas = walk.ranges.count
            roots.vmallocAreasSkipped = walk.skipped
            excludedFrames.formUnion(walk.backingFrames)
            let free = (try? freeVmapAreaWords(limits: limits)) ?? []
            roots.ignoredWords = (walk.bookkeepingWords + free).sorted()
        }
        attempt("struct page walk") { () throws(IntrospectionError) in
            let walk = try pageRoots(excluding: excludedFrames)
            roots.pageCensus = walk.census
            roots.freeFrameSample = Array(walk.freeFrames.suffix(64).reversed())
            roots.ranges += walk.slab.map { KernelRootRange($0, .slabPage) }
            // Free slots hold stale pointers (to objects long gone, to vmalloc ranges reused since):
            // a scan takes them out of the slab roots. Without the free lists, they stay roots.
            do {
                let free = try slubFreeSlots(of: walk.slabs, limits: limits)
                roots.freeSlabSlots = free.ranges
                roots.brokenFreeLists = free.brokenLists
            } catch {
                roots.problemsNotes.append("SLUB free lists not read (\(error)): free slots are roots")
            }
            roots.ranges += walk.kernel.map { KernelRootRange($0, .kernelPage) }
        }
        return roots
    }

    /// `.data`, `.bss` and ro_after_init of the kernel image, at their run-time addresses.
    func imageDataRoots() throws(IntrospectionError) -> [KernelRootRange] {
        let sections: [(String, String, KernelRootRange.Kind)] = [
            ("_sdata", "_edata", .imageData), ("__bss_start", "__bss_stop", .imageBSS),
            ("__start_ro_after_init", "__end_ro_after_init", .imageReadOnlyAfterInit),
        ]
        var result: [KernelRootRange] = []
        for (first, last, kind) in sections {
            let start = try symbol(first).rawValue, end = try symbol(last).rawValue
            guard start <= end, end - start <= 1 << 30 else {
                throw .inconsistent("\(first)..\(last) is 0x\(String(start, radix: 16))..0x\(String(end, radix: 16))")
            }
            if start < end { result.append(KernelRootRange(start..<end, kind)) }
        }
        return result
    }

    /// THREAD_SIZE: `__end_init_task - __start_init_task` when the image has both, else 16 KiB.
    public func threadSize() -> UInt64 {
        guard let start = try? symbol("__start_init_task").rawValue, let end = try? symbol("__end_init_task").rawValue,
              end > start, end - start >= 4096, end - start <= 1 << 20, (end - start) & (end - start - 1) == 0 else {
            return Self.defaultThreadSize
        }
        return end - start
    }

    /// Guest-physical frames behind a kernel virtual range (pages not present are skipped).
    func frames(of range: Range<UInt64>, into set: inout Set<UInt64>) throws(IntrospectionError) {
        var page = range.lowerBound & ~0xFFF
        while page < range.upperBound {
            var step: UInt64 = 4096
            do {
                let t = try space.translate(GuestVirtualAddress(page))
                set.insert(t.physicalAddress.rawValue >> 12)
            } catch {
                if case .notPresent = error {} else { throw .read("page table of kernel address 0x\(String(page, radix: 16))", .translationFailed(error)) }
                step = 4096
            }
            let (next, overflow) = page.addingReportingOverflow(step)
            if overflow { break }
            page = next
        }
    }
}
