/// One piece of guest kernel memory a kernel reachability scan treats as roots, and why.
public struct KernelRootRange: Sendable, Equatable {
    /// Where the root comes from. The first five are exact (kmemleak's roots); the last three are
    /// conservative roots for memory no object list describes (see docs/reachability.md).
    public enum Kind: String, Sendable, Codable, CaseIterable, Comparable {
        /// The kernel image's `.data` (`_sdata`..`_edata`, with `init_task` and `init_stack`).
        case imageData = "data"
        /// The kernel image's `.bss`.
        case imageBSS = "bss"
        /// The kernel image's read-only-after-init data.
        case imageReadOnlyAfterInit = "ro_after_init"
        /// One possible CPU's unit of the first per-CPU chunk (static, reserved and dynamic parts).
        case perCPU = "percpu"
        /// The live part of a task's kernel stack.
        case taskStack = "stack"
        /// A range the caller added (loaded modules' data).
        case extra = "extra"
        /// A slab page: the scanner keeps only its bytes outside the tracked objects and freed slots.
        case slabPage = "slab"
        /// A page the kernel owns outside slab, buddy, LRU and page cache (memblock, alloc_pages).
        case kernelPage = "kernel-page"
        /// A vmalloc area (module memory, other vmalloc users, cached stacks, per-CPU chunks).
        case vmallocArea = "vmalloc"

        /// Roots that stand for memory no object list describes: the scanner subtracts the
        /// tracked objects (and freed slots) from them.
        public var isConservative: Bool { self == .slabPage || self == .kernelPage || self == .vmallocArea }

        public static func < (a: Self, b: Self) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    public var range: Range<UInt64>
    public var kind: Kind

    public init(_ range: Range<UInt64>, _ kind: Kind) {
        self.range = range
        self.kind = kind
    }
}

/// The roots of the guest kernel at one pause: memory ranges by kind, the vCPUs' general
/// registers, and what could not be found.
public struct KernelRootSet: Sendable {
    public var ranges: [KernelRootRange] = []
    /// Every vCPU's general-purpose registers.
    public var registerWords: [UInt64] = []
    /// Possible CPUs whose per-CPU unit is a root.
    public var perCPUUnits = 0
    /// Tasks whose kernel stack is a root.
    public var stacks = 0
    /// Pages of the `struct page` walk, and how it classified them.
    public var pageCensus = KernelPageCensus()
    /// vmalloc areas taken as roots, and those skipped (task stacks, I/O mappings).
    public var vmallocAreas = 0, vmallocAreasSkipped = 0
    /// Stacks of exited tasks kept for reuse (`cached_stacks`): skipped, their contents are stale.
    public var cachedStacks = 0
    /// Those stacks (THREAD_SIZE each). `cached_stacks` holds their `vm_struct`s, a reference
    /// through bookkeeping a scan does not follow: a scan counts them referenced, and never reads
    /// their stale contents.
    public var cachedStackRanges: [Range<UInt64>] = []
    /// Free slots on SLUB's free lists (within the slab roots): stale memory, left out of the roots by a scan.
    public var freeSlabSlots: [Range<UInt64>] = []
    /// Free lists that ended early (corrupt or racing values), and caveats that do not make the set incomplete.
    public var brokenFreeLists = 0
    public var problemsNotes: [String] = []
    /// A few free frames (reference count 0), highest first: memory nothing should point into.
    public var freeFrameSample: [UInt64] = []
    /// Addresses of words that record where a vmalloc range starts or ends (`vmap_area.va_start`
    /// and `va_end` of busy, free and lazily freed ranges, `vm_struct.addr`), ascending:
    /// bookkeeping, not references, so a scan ignores them.
    public var ignoredWords: [UInt64] = []
    /// What could not be enumerated: a root set with problems misses roots, so a scan over it must
    /// not report leaks.
    public var problems: [String] = []

    public init() {}

    /// Whether every root kind was enumerated.
    public var isComplete: Bool { problems.isEmpty }

    /// Bytes of the ranges of each kind (saturated).
    public var bytesByKind: [KernelRootRange.Kind: UInt64] {
        var bytes: [KernelRootRange.Kind: UInt64] = [:]
        for r in ranges {
            let (sum, overflow) = bytes[r.kind, default: 0].addingReportingOverflow(r.range.upperBound &- r.range.lowerBound)
            bytes[r.kind] = overflow ? .max : sum
        }
        return bytes
    }
}

/// How the `struct page` walk classified the guest's page frames.
public struct KernelPageCensus: Sendable, Equatable, Codable {
    /// Frames whose `struct page` was read.
    public var frames = 0
    /// Frames in slab pages (PG_slab heads and their compound tails).
    public var slab = 0
    /// Free frames (reference count 0: buddy blocks, per-CPU page lists).
    public var free = 0
    /// Frames of user, page-cache and LRU pages, and typed pages (page tables, offline pages).
    public var user = 0
    /// Kernel-owned frames taken as roots.
    public var kernel = 0
    /// Kernel-owned frames left out: the kernel image, the per-CPU units, vmalloc backing pages.
    public var excluded = 0

    public init() {}
}
