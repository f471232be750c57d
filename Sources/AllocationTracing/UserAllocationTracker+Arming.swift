import Reachability
import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import X86

extension UserAllocationTracker {
    /// Arms the kernel hooks and every allocator in files the guest's processes map now. Call once
    /// the guest kernel has started user space, from a vCPU thread or with the guest paused.
    public func arm(memory: GuestMemory, vcpus: [VCPUSnapshot]) throws(TrackerError) -> ArmingSummary {
        let view: KernelView
        do { view = try KernelView(kernel: patcher.kernel, memory: memory, vcpus: vcpus) } catch { throw .kernel(error) }
        var summary = ArmingSummary()
        summary.kernelHooks = try patcher.armKernelHooks(view: view, memory: memory)
        // Each process once: its thread-group leader (the task list is read once).
        let tasks: [GuestTask]
        do { tasks = try view.tasks() } catch { throw .kernel(error) }
        for task in tasks where task.pid == task.tgid && task.mm != 0 {
            guard let mappings = try? view.mappings(ofMM: task.mm) else { continue }
            if let root = try? view.pageTableRoot(ofMM: task.mm) {
                spaces.withLock { _ = $0.preexisting.insert(root) }
            }
            for mapping in mappings where mapping.fileObject != 0 && mapping.permissions.contains("x") {
                considerFile(mapping.fileObject, view: view, memory: memory)
            }
        }
        (summary.sites, summary.files) = patcher.armedSites()
        trapping.store(true, ordering: .relaxed)
        return summary
    }

    /// `leakvisor attach`: arms a tracker that never armed or was disarmed, in a guest that runs
    /// user space already. Call with the guest paused; install the tracker as the guest's trap
    /// handler before it resumes. If arming fails, whatever it placed is put back.
    public func attach(_ guest: PausedGuest) throws(TrackerError) -> ArmingSummary {
        arming.withLock { $0.outcome = .failure(TrackerError.arming) }
        let outcome = Result { () throws(TrackerError) in try arm(memory: guest.memory, vcpus: guest.vcpus) }
        if case .failure = outcome { _ = disarm(guest) }
        arming.withLock { $0.outcome = outcome.mapError { $0 as any Error } }
        return try outcome.get()
    }

    /// Puts back every byte the monitor changed: kernel hooks, allocator breakpoints, and the
    /// return addresses of calls in flight. Call with the guest paused.
    ///
    /// With the exitless path, what a thread stopped on the path still needs (the padding jumps,
    /// the code page, its window) is taken away only once no thread is there: at once if none is,
    /// else by `finishExitlessDetach` (`exitlessDetachPending` says whether it must be called).
    public func disarm(_ guest: PausedGuest) -> ArmingSummary {
        arming.withLock { $0.outcome = .failure(TrackerError.disarmed) }
        trapping.store(false, ordering: .relaxed)
        var (summary, pagesBefore, padding) = patcher.restore(guest)
        // The rings first: the exitless calls in flight are known from their entry records.
        drainRings(memory: guest.memory)
        let exitlessCalls = calls.withLock { $0.exitlessCalls }
        let pending = calls.withLock { $0.drain() }
        let cr4 = guest.vcpus.first?.cr4 ?? 0
        let efer = guest.vcpus.first?.efer ?? 0
        for (slot, call) in pending {
            let user = UserMemory(memory: guest.memory, cr3: slot.root.rawValue, cr4: cr4, efer: efer)
            if (try? user.word(slot.address)) == CallTracker.trampoline, (try? user.writeWord(slot.address, call.returnAddress)) != nil {
                summary.returnAddressesRestored += 1
            }
        }
        if patcher.exitless != nil {
            exitlessDetach.withLock {
                $0 = PendingExitlessDetach(padding: padding, callsInFlight: exitlessCalls, pagesBefore: pagesBefore, summary: summary)
            }
            return finishExitlessDetach(guest) ?? summary
        }
        PageCachePatcher.comparePages(pagesBefore, in: guest.memory, into: &summary)
        return summary
    }

    /// Arms an open file's allocators (`PageCachePatcher.considerFile`) and counts the sites armed.
    func considerFile(_ file: UInt64, view: KernelView, memory: GuestMemory) {
        let armed = patcher.considerFile(file, view: view, memory: memory)
        counters.withLock { $0.sitesArmed += armed }
    }

    /// The `mmap_region` hook: arm the file being mapped if it has allocator functions.
    func mapped(file: UInt64, trap: GuestTrap, memory: GuestMemory) {
        counters.withLock { $0.mmapHooks += 1 }
        guard file != 0, let view = try? KernelView(kernel: patcher.kernel, memory: memory, vcpus: [trap.state]) else { return }
        considerFile(file, view: view, memory: memory)
    }

    /// The `exit_mmap` hook: the address space of `mm` is being torn down (exit or exec).
    func exiting(mm: UInt64, trap: GuestTrap, memory: GuestMemory) {
        counters.withLock { $0.exitHooks += 1 }
        guard let view = try? KernelView(kernel: patcher.kernel, memory: memory, vcpus: [trap.state]),
              let root = try? view.pageTableRoot(ofMM: mm) else { return }
        let exited = exitedThreads.withLock { $0.take(mm: mm) }
        // The space's last releases first (its threads are gone: its ring is complete).
        drainRing(root, memory: memory, cr4: trap.state.cr4, efer: trap.state.efer)
        defer { patcher.exitless?.spaceEnded(root) }
        if let exitObserver { exitObserver(exitingSpace(mm: mm, root: root, view: view, vcpu: trap.state.index, exited: exited)) }
        ledger.retire(root, as: .exited, time: clock.now)
        calls.withLock { $0.forget(root: root) }
        spaces.withLock { $0.forget(root) }
        identifier.forget(root)
    }

    /// An address space as it is torn down: its memory is intact and nothing else uses it. On
    /// exit the exiting thread (the last one) gives registers and stack; on exec the old image has
    /// no thread left.
    func exitingSpace(mm: UInt64, root: PageTableRoot, view: KernelView, vcpu: Int, exited: [ThreadRootState] = []) -> AddressSpaceExit {
        var threads: [GuestTask] = []
        let current = (try? view.currentTasks()) ?? [:]
        if let address = current[vcpu], let task = try? view.task(at: address), task.flags & Self.taskExiting != 0 {
            threads = [task]
        }
        // On exec there is no exiting thread, and the old image's threads are not roots of it.
        return AddressSpaceExit(root: root, mm: mm, threads: threads, exitedThreads: threads.isEmpty ? [] : exited,
                                view: view, current: current)
    }

    /// The `do_exit` hook: a thread dies. When it dies in its group's exit (not on its own), its
    /// registers, stack pointer and thread pointer are kept for its address space's exit scan.
    func threadExiting(trap: GuestTrap, memory: GuestMemory) {
        guard let view = try? KernelView(kernel: patcher.kernel, memory: memory, vcpus: [trap.state]),
              let current = try? view.currentTasks(), let address = current[trap.state.index],
              let task = try? view.task(at: address), task.mm != 0, !task.isKernelThread,
              (try? view.isInGroupExit(task)) == true,
              let state = try? ThreadRootState.read(task, view: view, current: current) else { return }
        exitedThreads.withLock { $0.add(state, mm: task.mm) }
    }

    /// PF_EXITING in `task_struct.flags`.
    static let taskExiting: UInt32 = 0x4
}
