import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import X86

extension KernelAllocationTracker {
    /// At the entry of `__vmalloc_node_range` or `kmem_cache_alloc_bulk`: remembers the call and
    /// replaces its return address (at `rsp`) with the monitor's return site, so that the return
    /// traps too. A call that cannot be followed (no return site, full table, unwritable slot) is
    /// counted and runs untracked.
    func enter(_ hook: KernelEventHook, registers r: GeneralRegisters, context: EventContext) {
        let site = returnSite.load(ordering: .relaxed)
        guard site != 0, let view = context.view, r.rsp & 7 == 0,
              let returnAddress = try? view.space.load(UInt64.self, at: GuestVirtualAddress(r.rsp)),
              returnAddress >= KernelObjectLedger.kernelHalf else {
            counters.withLock { $0.untrackedCalls += 1 }
            return
        }
        let kind: KernelPendingCall.Kind
        switch hook {
        case .vmalloc:
            // (size, align, start, end, gfp_mask, prot, vm_flags, node, caller): the last three on the stack.
            let caller = (try? view.space.load(UInt64.self, at: GuestVirtualAddress(r.rsp &+ 24))) ?? returnAddress
            kind = .vmalloc(size: r.rdi, caller: caller)
        default:
            kind = .allocBulk(cache: r.rdi, count: r.rdx, array: r.rcx)
        }
        let (stack, task) = who(context, registers: r)
        let call = KernelPendingCall(kind: kind, returnAddress: returnAddress, stack: stack, task: task)
        guard pending.withLock({ $0.add(call, slot: r.rsp) }) else {
            counters.withLock { $0.untrackedCalls += 1 }
            return
        }
        guard let physical = try? view.space.translate(GuestVirtualAddress(r.rsp)).physicalAddress,
              (try? view.memory.store(site, at: physical)) != nil else {
            _ = pending.withLock { $0.take(slot: r.rsp) }
            counters.withLock { $0.untrackedCalls += 1 }
            return
        }
    }

    /// A `ret` into the return site: the pending call whose slot it popped, if any, is recorded
    /// from `rax` and the thread goes on at the real return address. Returns how many events, or
    /// nil when no call is pending there (a genuine call of the function hooked at the site).
    func returned(registers r: GeneralRegisters, context: EventContext, resume: inout GeneralRegisters) -> (KernelEventHook, Int)? {
        guard let call = pending.withLock({ $0.take(slot: r.rsp &- 8) }) else { return nil }
        resume.rip = call.returnAddress
        let cpu = Int32(context.state.index)
        switch call.kind {
        case .vmalloc(let size, let caller):
            guard r.rax != 0 else {
                counters.withLock { $0.failedAllocations += 1 }
                return (.vmalloc, 1)
            }
            ledger.allocate(KernelAllocation(address: r.rax, requestedSize: size, allocatedSize: vmallocSize(size), allocator: .vmalloc,
                                             callSite: caller, stack: call.stack, time: context.time, cpu: cpu, task: call.task))
            return (.vmalloc, 1)
        case .allocBulk(let cache, let count, let array):
            // Returns how many objects it put in the array (0 on failure).
            let made = r.rax & 0xFFFF_FFFF
            guard made > 0 else {
                counters.withLock { $0.failedAllocations += 1 }
                return (.allocBulk, 1)
            }
            guard made <= count, made <= Self.maximumBulk, let view = context.view,
                  let objects = try? view.space.readWords(at: GuestVirtualAddress(array), count: Int(made)) else {
                counters.withLock { $0.unreadableBulkAllocations += 1 }
                return (.allocBulk, 0)
            }
            let info = try? self.cache(at: cache, view: view)
            if info == nil { counters.withLock { $0.unreadableCaches += 1 } }
            for object in objects where object != 0 {
                ledger.allocate(KernelAllocation(address: object, requestedSize: UInt64(info?.objectSize ?? 0),
                                                 allocatedSize: UInt64(info?.size ?? 0), allocator: .kmemCache, cacheName: info?.name,
                                                 callSite: call.returnAddress, stack: call.stack, time: context.time, cpu: cpu, task: call.task))
            }
            return (.allocBulk, objects.count)
        }
    }

    /// Puts back the real return address of every call in flight whose slot still holds the
    /// return site. Returns how many.
    func restorePendingReturns(view: KernelView?) -> Int {
        let site = returnSite.load(ordering: .relaxed)
        let drained = pending.withLock { $0.drain() }
        guard let view else { return 0 }
        var restored = 0
        for (slot, call) in drained {
            guard let physical = try? view.space.translate(GuestVirtualAddress(slot)).physicalAddress,
                  (try? view.memory.load(UInt64.self, at: physical)) == site,
                  (try? view.memory.store(call.returnAddress, at: physical)) != nil else { continue }
            restored += 1
        }
        return restored
    }
}
