/// A kernel allocation call without a tracepoint, entered and not yet returned: its return
/// address on the kernel stack was replaced with the monitor's return site (a kretprobe done
/// from outside). Keyed by the stack slot holding the return address.
struct KernelPendingCall: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// `__vmalloc_node_range(size, ..., caller)`.
        case vmalloc(size: UInt64, caller: UInt64)
        /// `kmem_cache_alloc_bulk(s, flags, size, p)`.
        case allocBulk(cache: UInt64, count: UInt64, array: UInt64)
    }
    let kind: Kind
    /// The real return address, put back on return (or at detach).
    let returnAddress: UInt64
    let stack: [UInt64]
    let task: Int32

    var hook: KernelEventHook {
        switch kind {
        case .vmalloc: return .vmalloc
        case .allocBulk: return .allocBulk
        }
    }
}

/// The pending calls, bounded: beyond `limit` a call is not followed to its return.
struct KernelPendingCalls: Sendable {
    static let limit = 4096
    var bySlot: [UInt64: KernelPendingCall] = [:]

    /// Adds a call whose return address is at `slot`; false when full or the slot is taken.
    mutating func add(_ call: KernelPendingCall, slot: UInt64) -> Bool {
        guard bySlot.count < Self.limit, bySlot[slot] == nil else { return false }
        bySlot[slot] = call
        return true
    }

    /// The call whose return popped `slot` (the stack pointer after a `ret` is `slot + 8`).
    mutating func take(slot: UInt64) -> KernelPendingCall? { bySlot.removeValue(forKey: slot) }

    mutating func drain() -> [(slot: UInt64, call: KernelPendingCall)] {
        defer { bySlot = [:] }
        return bySlot.map { ($0.key, $0.value) }
    }
}

/// vmalloc rounds every size up to whole pages.
func vmallocSize(_ size: UInt64) -> UInt64 {
    let (rounded, overflow) = size.addingReportingOverflow(4095)
    return overflow ? size : rounded & ~4095
}
