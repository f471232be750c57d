/// Which kernel allocator made an object (and which family frees it).
public enum KernelAllocator: String, Sendable, Codable, CaseIterable {
    /// The kmalloc family (`kmalloc`, `kzalloc`, `kmalloc_node`, `krealloc`, `kmalloc_large`,
    /// `kvmalloc`'s slab path): the `kmalloc` tracepoint.
    case kmalloc
    /// `kmem_cache_alloc` (+`_node`, `_lru`): the `kmem_cache_alloc` tracepoint.
    case kmemCache = "kmem_cache_alloc"
    /// The vmalloc family (`__vmalloc_node_range` and its callers, `kvmalloc`'s fallback).
    case vmalloc
}

/// Which kernel deallocator released an object.
public enum KernelDeallocator: String, Sendable, Codable, CaseIterable {
    /// `kfree` (and `kvfree`'s slab path): the `kfree` tracepoint.
    case kfree
    /// `kmem_cache_free`: the `kmem_cache_free` tracepoint.
    case kmemCacheFree = "kmem_cache_free"
    /// `kmem_cache_free_bulk` (`kfree_bulk`, used by `kfree_rcu` batches).
    case kmemCacheFreeBulk = "kmem_cache_free_bulk"
    /// `vfree` (and `kvfree`'s vmalloc path).
    case vfree
}

/// One allocation as the kernel tracker saw it, before the ledger interned its stack and cache name.
public struct KernelAllocation: Sendable, Equatable {
    public var address: UInt64
    public var requestedSize: UInt64
    public var allocatedSize: UInt64
    public var allocator: KernelAllocator
    /// The slab cache's name (`kmem_cache.name`), nil when unknown (kmalloc, vmalloc, or unreadable).
    public var cacheName: String?
    /// The caller the kernel names in its tracepoint (`_RET_IP_`), or the return address.
    public var callSite: UInt64
    /// Kernel return addresses, innermost first (ORC-unwound, bounded).
    public var stack: [UInt64]
    /// Nanoseconds on the tracker's clock.
    public var time: UInt64
    /// vCPU index the event happened on.
    public var cpu: Int32
    /// PID (thread id) of the vCPU's `current` task, 0 when unreadable.
    public var task: Int32

    public init(address: UInt64, requestedSize: UInt64, allocatedSize: UInt64, allocator: KernelAllocator,
                cacheName: String? = nil, callSite: UInt64, stack: [UInt64] = [], time: UInt64, cpu: Int32 = 0, task: Int32 = 0) {
        self.address = address
        self.requestedSize = requestedSize
        self.allocatedSize = allocatedSize
        self.allocator = allocator
        self.cacheName = cacheName
        self.callSite = callSite
        self.stack = stack
        self.time = time
        self.cpu = cpu
        self.task = task
    }
}

/// A live kernel object in the `KernelObjectLedger`: what `KernelAllocation` said, with its stack
/// and cache name interned (look them up with `KernelObjectLedger.stack(_:)` / `cacheName(_:)`).
public struct KernelObject: Sendable, Equatable, Codable {
    public var address: UInt64
    public var requestedSize: UInt64
    public var allocatedSize: UInt64
    public var allocator: KernelAllocator
    /// Index into the ledger's cache names; nil when unknown.
    public var cache: UInt32?
    public var callSite: UInt64
    /// Index into the ledger's stacks.
    public var stack: UInt32
    public var time: UInt64
    public var cpu: Int32
    public var task: Int32

    public init(address: UInt64, requestedSize: UInt64, allocatedSize: UInt64, allocator: KernelAllocator, cache: UInt32?,
                callSite: UInt64, stack: UInt32, time: UInt64, cpu: Int32, task: Int32) {
        self.address = address
        self.requestedSize = requestedSize
        self.allocatedSize = allocatedSize
        self.allocator = allocator
        self.cache = cache
        self.callSite = callSite
        self.stack = stack
        self.time = time
        self.cpu = cpu
        self.task = task
    }

    /// The object's bytes (`allocatedSize`: what the allocator handed out and the kernel may use).
    public var range: Range<UInt64> { address..<(address &+ allocatedSize < address ? UInt64.max : address &+ allocatedSize) }
}

/// Something wrong the kernel ledger saw the guest kernel do.
public struct KernelFinding: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// An object freed twice: an address this ledger saw freed and not allocated again.
        case doubleFree = "double free"
        /// A free by a deallocator of another allocator (`kfree` of a `vmalloc` object, ...).
        case mismatchedFree = "mismatched free"
        /// An allocation result that cannot be a kernel object (null or user-half address, or an end
        /// that wraps): a corrupt event.
        case implausibleObject = "implausible allocation result"
    }
    public var kind: Kind
    public var address: UInt64
    public var freedBy: KernelDeallocator?
    public var allocatedBy: KernelAllocator?
    public var callSite: UInt64
    /// Index into the ledger's stacks.
    public var stack: UInt32
    public var time: UInt64
    public var cpu: Int32
    public var task: Int32
}

/// The kernel ledger's counters.
public struct KernelLedgerCounters: Sendable, Codable, Equatable {
    /// Allocations recorded, by allocator.
    public var allocations: [KernelAllocator: Int] = [:]
    /// Frees of objects the ledger knew, by deallocator.
    public var frees: [KernelDeallocator: Int] = [:]
    /// Bytes handed out (allocated size) over the whole run, and freed.
    public var bytesAllocated: UInt64 = 0
    public var bytesFreed: UInt64 = 0
    /// Frees of objects allocated before tracking started (unknown to the ledger, not findings).
    public var freedAllocatedBeforeTracking = 0
    /// `kfree(NULL)` and the like.
    public var nullFrees = 0
    /// Allocations at the address of an object still live in the ledger: its free was not seen
    /// (a path without a hook); the old object is dropped.
    public var replacedWhileLive = 0
    public var findings = 0

    public init() {}

    public var totalAllocations: Int { allocations.values.reduce(0, +) }
    public var totalFrees: Int { frees.values.reduce(0, +) }
}
