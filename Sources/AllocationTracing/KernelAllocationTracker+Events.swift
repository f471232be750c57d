import AllocationLedger
import GuestInterface
import Introspection
import X86

/// Who and where, for the events of one kernel trap.
struct EventContext {
    let view: KernelView?
    let state: VCPUSnapshot
    let time: UInt64
}

extension KernelAllocationTracker {
    /// Records the events of a trap at `hook` (arguments in the registers, as the tracepoint's
    /// prototype in the kernel's BTF says: `btf_trace_kmalloc` is (data, call_site, ptr,
    /// bytes_req, bytes_alloc, gfp_flags, node), `kmem_cache_alloc` (data, call_site, ptr, s,
    /// gfp_flags, node), `kfree` (data, call_site, ptr), `kmem_cache_free` (data, call_site, ptr,
    /// s); `kmem_cache_free_bulk(s, size, p)` and `vfree(addr)` at entry). Returns how many.
    func record(_ hook: KernelEventHook, registers r: GeneralRegisters, context: EventContext) -> Int {
        switch hook {
        case .kmalloc:
            guard r.rdx != 0 else { return failed() }
            let (stack, task) = who(context, registers: r)
            ledger.allocate(KernelAllocation(address: r.rdx, requestedSize: r.rcx, allocatedSize: r.r8, allocator: .kmalloc,
                                             callSite: r.rsi, stack: stack, time: context.time, cpu: Int32(context.state.index), task: task))
            return 1
        case .kmemCacheAlloc:
            guard r.rdx != 0 else { return failed() }
            let (stack, task) = who(context, registers: r)
            let cache = context.view.flatMap { try? self.cache(at: r.rcx, view: $0) }
            if cache == nil { counters.withLock { $0.unreadableCaches += 1 } }
            ledger.allocate(KernelAllocation(address: r.rdx, requestedSize: UInt64(cache?.objectSize ?? 0),
                                             allocatedSize: UInt64(cache?.size ?? 0), allocator: .kmemCache, cacheName: cache?.name,
                                             callSite: r.rsi, stack: stack, time: context.time, cpu: Int32(context.state.index), task: task))
            return 1
        case .kfree, .kmemCacheFree:
            let (stack, task) = who(context, registers: r)
            ledger.free(r.rdx, by: hook == .kfree ? .kfree : .kmemCacheFree, callSite: r.rsi, stack: stack, time: context.time,
                        cpu: Int32(context.state.index), task: task)
            return 1
        case .vfree:
            let (stack, task) = who(context, registers: r)
            ledger.free(r.rdi, by: .vfree, callSite: stack.first ?? 0, stack: stack, time: context.time,
                        cpu: Int32(context.state.index), task: task)
            return 1
        case .freeBulk:
            guard let view = context.view, r.rsi <= Self.maximumBulk,
                  let pointers = try? view.space.readWords(at: GuestVirtualAddress(r.rdx), count: Int(r.rsi)) else {
                counters.withLock { $0.unreadableBulkFrees += 1 }
                return 0
            }
            let (stack, task) = who(context, registers: r)
            for pointer in pointers where pointer != 0 {
                ledger.free(pointer, by: .kmemCacheFreeBulk, callSite: stack.first ?? 0, stack: stack, time: context.time,
                            cpu: Int32(context.state.index), task: task)
            }
            return pointers.count
        case .vmalloc, .allocBulk:
            return 0    // recorded at their return (`returned`)
        }
    }

    private func failed() -> Int {
        counters.withLock { $0.failedAllocations += 1 }
        return 1
    }

    /// The kernel stack (return addresses, innermost first, without the hooked function itself)
    /// and the PID of the vCPU's `current` task.
    func who(_ context: EventContext, registers: GeneralRegisters) -> (stack: [UInt64], task: Int32) {
        guard let view = context.view, let current = try? view.currentTasks()[context.state.index] else {
            counters.withLock { $0.unreadableStacks += 1 }
            return ([], 0)
        }
        let task = (try? view.threadID(ofTask: current)) ?? 0
        guard let addresses = try? view.kernelReturnAddresses(registers: registers, task: current, limit: Self.stackDepth + 1) else {
            counters.withLock { $0.unreadableStacks += 1 }
            return ([], task)
        }
        return (Array(addresses.dropFirst()), task)
    }

    /// A slab cache's name and sizes (`kmem_cache.name`, `.object_size`, `.size`), read through
    /// the kernel's page tables; a pointer that is not a kernel address or cannot be read fails.
    func cache(at address: UInt64, view: KernelView) throws -> (name: String, objectSize: UInt32, size: UInt32) {
        let layout = try kernel.layout.kmem.get()
        guard address >= KernelObjectLedger.kernelHalf,
              address.addingReportingOverflow(UInt64(max(layout.cacheName, layout.cacheSize, layout.cacheObjectSize) + 8)).overflow == false
        else { throw KernelTrackingError.unreadable("kmem_cache", address) }
        let space = view.space
        let objectSize = try space.load(UInt32.self, at: GuestVirtualAddress(address &+ UInt64(layout.cacheObjectSize)))
        let size = try space.load(UInt32.self, at: GuestVirtualAddress(address &+ UInt64(layout.cacheSize)))
        let namePointer = try space.load(UInt64.self, at: GuestVirtualAddress(address &+ UInt64(layout.cacheName)))
        if let known = cacheNames.withLock({ $0[namePointer] }) { return (known, objectSize, size) }
        guard namePointer >= KernelObjectLedger.kernelHalf else { throw KernelTrackingError.unreadable("kmem_cache.name", namePointer) }
        let name = try space.readCString(at: GuestVirtualAddress(namePointer), maxLength: 64)
        cacheNames.withLock { names in if names.count < 4096 { names[namePointer] = name } }
        return (name, objectSize, size)
    }
}
