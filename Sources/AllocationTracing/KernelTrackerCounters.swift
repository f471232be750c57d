/// The kernel tracker's trap and event counts.
public struct KernelTrackerCounters: Sendable, Codable, Equatable {
    public init() {}
    /// Traps taken, by hooked function (`__traceiter_kmalloc`, `vfree`, ...).
    public var traps: [String: Int] = [:]
    /// Events recorded from those traps, by hooked function (a bulk free is one trap, n events).
    public var events: [String: Int] = [:]
    /// Allocations that returned null (failed): trapped, nothing recorded.
    public var failedAllocations = 0
    /// `kmem_cache_alloc` events whose cache could not be read (recorded without a cache name).
    public var unreadableCaches = 0
    /// Traps whose kernel stack could not be unwound (recorded with the call site only).
    public var unreadableStacks = 0
    /// Tracepoint traps whose return address could not be read: resumed through the iterator.
    public var unreadableReturns = 0
    /// Bulk frees whose pointer array could not be read.
    public var unreadableBulkFrees = 0
    /// Bulk allocations whose pointer array could not be read at their return.
    public var unreadableBulkAllocations = 0
    /// `__vmalloc_node_range` / `kmem_cache_alloc_bulk` calls not followed to their return (no
    /// return site, too many in flight, or an unreadable stack): their objects are unknown.
    public var untrackedCalls = 0

    public var totalTraps: Int { traps.values.reduce(0, +) }
    public var totalEvents: Int { events.values.reduce(0, +) }
}

/// What arming the kernel tracker did.
public struct KernelArmingSummary: Sendable, Equatable {
    public init() {}
    /// Tracepoints enabled (`kmalloc`, `kmem_cache_alloc`, `kfree`, `kmem_cache_free`).
    public var tracepoints: [String] = []
    /// Jump-label sites turned into jumps.
    public var jumpSites = 0
    /// Function entries hooked (the tracepoint iterators, `kmem_cache_free_bulk`, `vfree`).
    public var entryHooks: [String] = []
    /// The return site of vmalloc and bulk allocations (the `vfree` hook), 0 if none.
    public var returnSite: UInt64 = 0
    /// What could not be armed and why.
    public var notes: [String] = []
}
