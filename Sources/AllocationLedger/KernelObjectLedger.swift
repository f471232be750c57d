import Synchronization

/// The kernel allocation ledger, kept outside the guest beside the user-space ones: the guest
/// kernel's live objects by address (size requested and allocated, allocator, slab cache, call
/// site, interned stack, time, CPU, task), the objects freed under tracking and not allocated
/// again (`freedSlots`), findings (double frees, mismatched frees, implausible results) and
/// counters. An object allocated before tracking started is unknown: its free is counted apart,
/// never a finding. Safe to use from every vCPU thread at once.
public final class KernelObjectLedger: Sendable {
    /// What a free did.
    public enum FreeOutcome: Sendable, Equatable {
        case freed(KernelObject)
        /// A free of a null pointer (or `ZERO_SIZE_PTR`).
        case null
        /// The object was allocated before tracking started.
        case allocatedBeforeTracking
        case finding(KernelFinding.Kind)
    }

    /// What the ledger did with an allocation.
    public enum AllocationOutcome: Sendable, Equatable {
        case recorded
        /// An object was live at that address: its free was missed; it is replaced.
        case replaced(KernelObject)
        /// Not a kernel object (a corrupt event): a finding, nothing recorded.
        case refused
    }

    /// How many freed slots the ledger remembers (oldest forgotten first).
    public static let freedSlotLimit = 1 << 20
    /// The lowest kernel address (x86-64 kernel half).
    public static let kernelHalf: UInt64 = 0xFFFF_8000_0000_0000
    /// The largest address `kfree` treats as null (`ZERO_SIZE_PTR` is 16).
    static let zeroSizePointer: UInt64 = 16

    struct State: Sendable {
        var live: [UInt64: KernelObject] = [:]
        /// Address → allocated size of objects freed under tracking and not allocated again.
        var freed: [UInt64: UInt64] = [:]
        /// Insertion order of `freed`, for the limit (entries may be stale: checked on eviction).
        var freedOrder: [UInt64] = []
        var freedOrderStart = 0
        var findings: [KernelFinding] = []
        var counters = KernelLedgerCounters()
        var stacks = StackTable()
        var cacheNames: [String] = []
        var cacheIndex: [String: UInt32] = [:]

        mutating func internCache(_ name: String?) -> UInt32? {
            guard let name else { return nil }
            if let index = cacheIndex[name] { return index }
            let index = UInt32(cacheNames.count)
            cacheNames.append(name)
            cacheIndex[name] = index
            return index
        }

        mutating func rememberFreed(_ address: UInt64, size: UInt64) {
            if freed.updateValue(size, forKey: address) == nil { freedOrder.append(address) }
            while freed.count > KernelObjectLedger.freedSlotLimit, freedOrderStart < freedOrder.count {
                freed[freedOrder[freedOrderStart]] = nil
                freedOrderStart += 1
            }
            if freedOrderStart > 4096, freedOrderStart * 2 > freedOrder.count {
                freedOrder.removeFirst(freedOrderStart)
                freedOrderStart = 0
            }
        }
    }

    let state = Mutex(State())

    public init() {}

    /// Records an allocation. A result outside the kernel half, or whose end wraps, is refused
    /// (a finding). An allocation at a live object's address replaces it (its free was missed).
    @discardableResult
    public func allocate(_ event: KernelAllocation) -> AllocationOutcome {
        state.withLock { s in
            let stack = s.stacks.intern(event.stack)
            guard event.address >= Self.kernelHalf, event.address.addingReportingOverflow(event.allocatedSize).overflow == false else {
                s.findings.append(KernelFinding(kind: .implausibleObject, address: event.address, freedBy: nil,
                                                allocatedBy: event.allocator, callSite: event.callSite, stack: stack,
                                                time: event.time, cpu: event.cpu, task: event.task))
                s.counters.findings += 1
                return .refused
            }
            let object = KernelObject(address: event.address, requestedSize: event.requestedSize, allocatedSize: event.allocatedSize,
                                      allocator: event.allocator, cache: s.internCache(event.cacheName), callSite: event.callSite,
                                      stack: stack, time: event.time, cpu: event.cpu, task: event.task)
            s.counters.allocations[event.allocator, default: 0] += 1
            s.counters.bytesAllocated = s.counters.bytesAllocated.addingReportingOverflow(event.allocatedSize).partialValue
            s.freed[event.address] = nil
            if let old = s.live.updateValue(object, forKey: event.address) {
                s.counters.replacedWhileLive += 1
                return .replaced(old)
            }
            return .recorded
        }
    }

    /// Records a free of `address` by `deallocator`.
    @discardableResult
    public func free(_ address: UInt64, by deallocator: KernelDeallocator, callSite: UInt64, stack: [UInt64] = [],
                     time: UInt64, cpu: Int32 = 0, task: Int32 = 0) -> FreeOutcome {
        state.withLock { s in
            guard address > Self.zeroSizePointer else {
                s.counters.nullFrees += 1
                return .null
            }
            if let object = s.live.removeValue(forKey: address) {
                s.counters.frees[deallocator, default: 0] += 1
                s.counters.bytesFreed = s.counters.bytesFreed.addingReportingOverflow(object.allocatedSize).partialValue
                s.rememberFreed(address, size: object.allocatedSize)
                if !Self.matches(object.allocator, deallocator) {
                    record(.mismatchedFree, address: address, deallocator, allocatedBy: object.allocator, callSite: callSite,
                           stack: stack, time: time, cpu: cpu, task: task, in: &s)
                    return .finding(.mismatchedFree)
                }
                return .freed(object)
            }
            if s.freed[address] != nil {
                record(.doubleFree, address: address, deallocator, allocatedBy: nil, callSite: callSite, stack: stack,
                       time: time, cpu: cpu, task: task, in: &s)
                return .finding(.doubleFree)
            }
            s.counters.freedAllocatedBeforeTracking += 1
            return .allocatedBeforeTracking
        }
    }

    private func record(_ kind: KernelFinding.Kind, address: UInt64, _ deallocator: KernelDeallocator, allocatedBy: KernelAllocator?,
                        callSite: UInt64, stack: [UInt64], time: UInt64, cpu: Int32, task: Int32, in s: inout State) {
        s.findings.append(KernelFinding(kind: kind, address: address, freedBy: deallocator, allocatedBy: allocatedBy,
                                        callSite: callSite, stack: s.stacks.intern(stack), time: time, cpu: cpu, task: task))
        s.counters.findings += 1
    }

    /// Whether `deallocator` may free an object of `allocator`: `kfree` takes kmalloc objects and,
    /// since 6.1 (SLUB/SLAB), any slab object; `kmem_cache_free` and the bulk free any slab object
    /// (the caller names the cache); `vfree` only vmalloc objects.
    static func matches(_ allocator: KernelAllocator, _ deallocator: KernelDeallocator) -> Bool {
        switch deallocator {
        case .vfree: return allocator == .vmalloc
        case .kfree, .kmemCacheFree, .kmemCacheFreeBulk: return allocator != .vmalloc
        }
    }

    // MARK: views

    /// The live object at `address`, if any.
    public func object(at address: UInt64) -> KernelObject? { state.withLock { $0.live[address] } }

    /// Every live object, by address.
    public func liveObjects() -> [KernelObject] { state.withLock { Array($0.live.values) }.sorted { $0.address < $1.address } }

    /// How many objects are live.
    public var liveCount: Int { state.withLock { $0.live.count } }

    /// Address → allocated size of objects freed under tracking and not allocated again (the
    /// reachability scanner leaves their stale contents out of its roots).
    public var freedSlots: [UInt64: UInt64] { state.withLock { $0.freed } }

    public var findings: [KernelFinding] { state.withLock { $0.findings } }

    public var counters: KernelLedgerCounters { state.withLock { $0.counters } }

    /// The interned stack `id` (empty when unknown).
    public func stack(_ id: UInt32) -> [UInt64] {
        state.withLock { s in Int(id) < s.stacks.stacks.count ? s.stacks.stacks[Int(id)] : [] }
    }

    /// The interned slab cache name `id`, nil when unknown.
    public func cacheName(_ id: UInt32?) -> String? {
        guard let id else { return nil }
        return state.withLock { s in Int(id) < s.cacheNames.count ? s.cacheNames[Int(id)] : nil }
    }

    /// A consistent copy of everything, for reports.
    public func snapshot() -> KernelLedgerSnapshot {
        state.withLock { s in
            KernelLedgerSnapshot(objects: s.live.values.sorted { $0.address < $1.address }, findings: s.findings, counters: s.counters,
                                 stacks: s.stacks.stacks, cacheNames: s.cacheNames)
        }
    }
}

/// The kernel ledger at one moment: live objects by address, findings, counters, and the tables
/// their stack and cache indices refer to.
public struct KernelLedgerSnapshot: Sendable, Codable, Equatable {
    public var objects: [KernelObject]
    public var findings: [KernelFinding]
    public var counters: KernelLedgerCounters
    public var stacks: [[UInt64]]
    public var cacheNames: [String]

    public func stack(_ id: UInt32) -> [UInt64] { Int(id) < stacks.count ? stacks[Int(id)] : [] }
    public func cacheName(_ id: UInt32?) -> String? { id.flatMap { Int($0) < cacheNames.count ? cacheNames[Int($0)] : nil } }
}
