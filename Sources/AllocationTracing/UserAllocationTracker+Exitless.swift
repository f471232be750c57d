import AllocationLedger
import Foundation
import GuestInterface
import GuestMemory
import Introspection
import X86

/// The tracker's side of the exitless path (`ExitlessPath`): rings drained before any trap of
/// their space is handled (so the ledger sees every release before the address is handed out
/// again), the faults that map the code page and windows on first use, the full-ring `int3`, and
/// the trapped fallback for a space that cannot have a window, and detach.
extension UserAllocationTracker {
    /// Allocator entry points armed with the exitless jumps now.
    public var exitlessEntryPoints: Int { patcher.table.withLock { $0.exitless.count } }

    /// Why the exitless path stopped arming entry points (the code page could not be mapped), if it did.
    public var exitlessRefusal: String? { patcher.exitless?.refusal }

    /// Takes `root`'s ring records into the ledger. `cr4` and `efer` are the vCPU's (for reading
    /// the process's memory).
    func drainRing(_ root: PageTableRoot, memory: GuestMemory, cr4: UInt64, efer: UInt64) {
        guard let exitless = patcher.exitless else { return }
        // Taken and recorded under one lock: a vCPU that drains after another must not record an
        // allocation before the other has recorded the releases it took.
        ringOrder.withLock { _ in drainRingLocked(root, exitless: exitless, memory: memory, cr4: cr4, efer: efer) }
    }

    /// `drainRing` for the space a trapped vCPU is in.
    func drainRing(of state: VCPUSnapshot, memory: GuestMemory) {
        guard patcher.exitless != nil else { return }
        if state.systemCallEntry != 0 { lastUserState.withLock { $0 = state } }
        drainRing(PageTableRoot(cr3: state.cr3), memory: memory, cr4: state.cr4, efer: state.efer)
    }

    private func drainRingLocked(_ root: PageTableRoot, exitless: ExitlessPath, memory: GuestMemory, cr4: UInt64, efer: UInt64) {
        let drained = exitless.drain(root)
        // A space whose tracking ended (`abandon`) records nothing more, as its traps do.
        guard !drained.isEmpty, !spaces.withLock({ $0.abandoned.contains(root) }) else { return }
        let user = UserMemory(memory: memory, cr3: root.rawValue, cr4: cr4, efer: efer)
        let now = clock.now
        var kernel = RingKernelContext(tracker: self, memory: memory)
        for (record, stub) in drained {
            let site = record.resumeAddress &- UInt64(stub.displacedLength)
            switch record.kind {
            case .release:
                recordRelease(stub.function, pointer: record.pointer, returnAddress: record.returnAddress, rsp: record.stackPointer,
                              threadPointer: record.threadPointer, site: site, checksFamily: stub.checksFamily,
                              task: exitless.task(root: root, threadPointer: record.threadPointer),
                              thread: kernel.threadID(root: root, threadPointer: record.threadPointer),
                              root: root, user: user, time: now, trapped: false)
            case .allocationEntry(let arguments, let framePointer, let stack):
                recordAllocationEntry(stub, record: record, arguments: arguments, framePointer: framePointer, stack: stack,
                                      site: site, root: root, kernel: &kernel, time: now)
            case .allocationExit:
                let thread = ThreadKey(root: root, fsBase: record.threadPointer, task: 0)
                guard let completion = calls.withLock({ $0.completedFromRing(thread: thread, rsp: record.stackPointer, result: record.pointer) })
                else { continue }
                counters.withLock { $0.ringAllocations += 1 }
                ledger.record(completion, strict: isStrict(root))
                if Self.tracing {
                    Self.trace("ring return \(completion.call.function.rawValue) cr3=\(hex(root.rawValue)) rsp=\(hex(record.stackPointer)) size=\(completion.call.size) result=\(hex(record.pointer))")
                }
            }
        }
    }

    /// Every space's ring (before a scan's marking, and before the final report). Call with the
    /// guest paused or stopped.
    public func drainRings(memory: GuestMemory) {
        guard let exitless = patcher.exitless else { return }
        let (cr4, efer) = pagingRegisters.withLock { $0 }
        for root in exitless.spacesWithWindows { drainRing(root, memory: memory, cr4: cr4, efer: efer) }
    }

    /// A release the exitless path saw (from a ring, or at a fallback trap): decided by the call
    /// tracker like a trapped entry, then recorded.
    func recordRelease(_ function: AllocatorFunction, pointer: UInt64, returnAddress: UInt64, rsp: UInt64, threadPointer: UInt64,
                       site: UInt64, checksFamily: Bool, task: UInt64, thread: Int32, root: PageTableRoot, user: UserMemory,
                       time: UInt64, trapped: Bool) {
        let entry = CallEntry(function: function, arguments: CallArguments(oldPointer: pointer),
                              thread: ThreadKey(root: root, fsBase: threadPointer, task: task),
                              rsp: rsp, returnAddress: returnAddress, site: site)
        let outerSlotWord = calls.withLock { $0.outermostSlot(of: entry.thread) }.flatMap { try? user.word($0) }
        let decision = calls.withLock { $0.enter(entry, outerSlotWord: outerSlotWord) }
        switch decision {
        case .release(let address):
            ledger.recordRelease(of: address, by: entry, context: CallContext(stack: [site, returnAddress], thread: thread, time: time),
                                 strict: isStrict(root), checksFamily: checksFamily)
            counters.withLock { c in if trapped { c.releases += 1 } else { c.ringReleases += 1 } }
        case .nested, .forwardedRelease, .redirect:
            counters.withLock { c in if trapped { c.nestedEntries += 1 } else { c.ringNestedEntries += 1 } }
        }
        if Self.tracing {
            Self.trace("ring \(function.rawValue) cr3=\(hex(root.rawValue)) fs=\(hex(threadPointer)) rsp=\(hex(rsp)) ret=\(hex(returnAddress)) ptr=\(hex(pointer)) → \(decision)")
        }
    }

    /// A user page fault at the code page or a window: mapped now (the thread retries), or the
    /// call made the trapped way. Nil when the fault is not the exitless path's.
    func exitlessFault(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool? {
        guard let exitless = patcher.exitless else { return nil }
        let state = trap.state
        let root = PageTableRoot(cr3: state.cr3)
        switch exitless.fault(at: trap.faultAddress, rip: state.registers.rip, root: root, memory: memory) {
        case .notOurs:
            return nil
        case .mapped:
            counters.withLock { $0.exitlessTraps += 1 }
            return true
        case .fallback(let stub, let atEntry):
            counters.withLock { $0.exitlessTraps += 1 }
            return stub.function.releases ? fallback(stub, atEntry: atEntry, trap: &trap, memory: memory)
                : allocationFallback(stub, atEntry: atEntry, trap: &trap, memory: memory)
        case .skipExit(let resume):
            counters.withLock { $0.exitlessTraps += 1 }
            trap.resume.rip = resume
            return true
        case .copyCut(let resume):
            counters.withLock { $0.exitlessTraps += 1 }
            // The main thread's stack ends where its copy faulted: later copies stop there.
            let (view, task) = identifier.kernelContext(of: trap, memory: memory)
            if let current = view.flatMap({ v in task == 0 ? nil : try? v.task(at: task) }), current.pid == current.tgid {
                exitless.setStackLimit(trap.faultAddress & ~0xFFF, root: root)
            }
            trap.resume.rip = resume
            return true
        }
    }

    /// The call a stub was about to record, made the trapped way: the release recorded from the
    /// registers, the displaced instruction run, the thread resumed after it. At the stub's entry
    /// the stack holds the padding call's return address, past it the resume address; the
    /// caller's return address is the word after either.
    private func fallback(_ stub: ExitlessPath.Stub, atEntry: Bool, trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        let state = trap.state
        let root = PageTableRoot(cr3: state.cr3)
        let user = UserMemory(memory: memory, cr3: state.cr3, cr4: state.cr4, efer: state.efer)
        var registers = state.registers
        guard let top = try? user.word(registers.rsp), let returnAddress = try? user.word(registers.rsp &+ 8) else { return false }
        let resume = atEntry ? UInt64(bitPattern: Int64(bitPattern: top) &+ Int64(stub.resumeDelta)) : top
        let site = resume &- UInt64(stub.displacedLength)
        let (view, task) = identifier.kernelContext(of: trap, memory: memory)
        let tid = view.flatMap { v in task == 0 ? nil : try? v.threadID(ofTask: task) } ?? 0
        recordRelease(stub.function, pointer: registers.rdi, returnAddress: returnAddress, rsp: registers.rsp &+ 8,
                      threadPointer: trap.fsBase, site: site, checksFamily: stub.checksFamily, task: task, thread: tid,
                      root: root, user: user, time: clock.now, trapped: true)
        registers.rsp &+= 8
        registers.rip = site
        do {
            try stub.runDisplaced(&registers, user: user)
        } catch {
            abandon(root, "the exitless fallback at \(hex(site)) could not run the displaced instruction: \(error)")
            return false
        }
        trap.resume = registers
        return true
    }

    /// An allocation whose window cannot be mapped, made the trapped way: the thread is put back
    /// at the allocator's entry as the `int3` would have found it (rsp at the caller's return
    /// address), and the call goes through `enter` (its return through the trampoline).
    private func allocationFallback(_ stub: ExitlessPath.Stub, atEntry: Bool, trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        let state = trap.state
        let user = UserMemory(memory: memory, cr3: state.cr3, cr4: state.cr4, efer: state.efer)
        guard let top = try? user.word(state.registers.rsp) else { return false }
        let resume = atEntry ? UInt64(bitPattern: Int64(bitPattern: top) &+ Int64(stub.resumeDelta)) : top
        var registers = state.registers
        registers.rsp &+= 8
        registers.rip = resume &- UInt64(stub.displacedLength)
        do {
            try enter(stub.site, trap: &trap, registersAtEntry: registers, user: user, memory: memory)
            // `enter` ran the first displaced instruction; the entry's patch covers the others too.
            for instruction in stub.following {
                try instruction.execute(&trap.resume, readMemory: { try user.read($0, count: $1) }, writeMemory: { try user.write($0, $1) })
            }
        } catch {
            counters.withLock { $0.unreadableCalls += 1 }
            guard (try? stub.runDisplaced(&registers, user: user)) != nil else {
                abandon(PageTableRoot(cr3: state.cr3), "the exitless fallback at \(hex(registers.rip)) could not run the displaced instruction")
                return false
            }
            trap.resume = registers
        }
        return true
    }

    /// Whether a detach waits for threads to leave the exitless path (`finishExitlessDetach`).
    public var exitlessDetachPending: Bool { exitlessDetach.withLock { $0 != nil } }

    /// Completes a detach once no user thread is on the exitless path (its rip in the code page
    /// or in a padding jump): the padding put back, the rings drained a last time, the page-table
    /// entries cleared and the region taken away from the guest. Returns the whole detach's
    /// summary then, nil while a thread is still there (call again after letting the guest run).
    /// Call with the guest paused.
    public func finishExitlessDetach(_ guest: PausedGuest) -> ArmingSummary? {
        guard let exitless = patcher.exitless, let pending = exitlessDetach.withLock({ $0 }) else { return nil }
        guard let onPath = threadsOnExitlessPath(guest, padding: pending.padding), onPath == 0,
              exitlessCallsReturning(pending.callsInFlight, guest: guest) == 0 else { return nil }
        var summary = pending.summary
        PageCachePatcher.restoreExitlessPadding(pending.padding, memory: guest.memory, into: &summary)
        drainRings(memory: guest.memory)
        exitless.unmapAll(memory: guest.memory)
        PageCachePatcher.comparePages(pending.pagesBefore, in: guest.memory, into: &summary)
        exitlessDetach.withLock { $0 = nil }
        return summary
    }

    /// `disarm` with `guest` paused, then, when threads are on the exitless path,
    /// `completeDetach`: the whole detach's summary.
    public func detach(from guest: any InspectableGuest, timeout: Double) throws -> ArmingSummary {
        let summary = try guest.withGuestPaused(timeout: timeout) { disarm($0) }
        return exitlessDetachPending ? completeDetach(of: guest, summary: summary) : summary
    }

    /// After `disarm` (which returned `summary`): lets the guest run a moment and tries
    /// `finishExitlessDetach` again, until no thread is on the exitless path (about 2 s at most,
    /// then `abandonExitlessDetach`). Returns the whole detach's summary.
    public func completeDetach(of guest: any InspectableGuest, summary: ArmingSummary) -> ArmingSummary {
        for _ in 0..<100 where exitlessDetachPending {
            Thread.sleep(forTimeInterval: 0.02)
            let attempt: ArmingSummary?? = try? guest.withGuestPaused(timeout: 10) { (paused: PausedGuest) -> ArmingSummary? in
                self.finishExitlessDetach(paused)
            }
            if let done = attempt ?? nil { return done }
        }
        return abandonExitlessDetach() ?? summary
    }

    /// Gives up waiting: the exitless path's pages stay mapped (its padding jumps and code page
    /// still work; its rings are no longer drained). Returns the summary with a note.
    public func abandonExitlessDetach() -> ArmingSummary? {
        let pending: PendingExitlessDetach? = exitlessDetach.withLock { p in
            let was = p
            p = nil
            return was
        }
        guard var summary = pending?.summary else { return nil }
        summary.notes.append("a thread stayed on the exitless path: its code page, padding jumps and rings were left in the guest")
        return summary
    }

    /// How many of the exitless allocation calls that were in flight at the detach have not
    /// returned yet: the word below their slot's resume word still holds the stub's return
    /// address (a thread gone, or a stack unmapped, counts as returned).
    func exitlessCallsReturning(_ slots: [StackSlot], guest: PausedGuest) -> Int {
        let cr4 = guest.vcpus.first?.cr4 ?? 0, efer = guest.vcpus.first?.efer ?? 0
        return slots.filter { slot in
            let user = UserMemory(memory: guest.memory, cr3: slot.root.rawValue, cr4: cr4, efer: efer)
            return (try? user.word(slot.address &- 16)).map(ExitlessLayout.isCode) ?? false
        }.count
    }

    /// How many user threads are on the exitless path now; nil when the kernel could not be read.
    func threadsOnExitlessPath(_ guest: PausedGuest, padding: [ExitlessArmedSite]) -> Int? {
        guard let view = try? KernelView(kernel: patcher.kernel, memory: guest.memory, vcpus: guest.vcpus),
              let tasks = try? view.tasks(), let current = try? view.currentTasks() else { return nil }
        let runs = padding.flatMap { $0.runs.dropFirst().map { ($0.physical.rawValue, $0.physical.rawValue + UInt64($0.written.count)) } }
        var count = 0
        for task in tasks where task.mm != 0 && !task.isKernelThread {
            guard let (registers, _) = try? view.userRegisters(of: task, current: current) else { continue }
            let rip = registers.rip
            if ExitlessLayout.isCode(rip) { count += 1; continue }
            guard !runs.isEmpty, let root = try? view.pageTableRoot(ofMM: task.mm),
                  let physical = try? AddressSpace(memory: guest.memory, root: root, mode: view.mode)
                    .translate(GuestVirtualAddress(rip)).physicalAddress.rawValue else { continue }
            if runs.contains(where: { $0.0 <= physical && physical < $0.1 }) { count += 1 }
        }
        return count
    }

    /// A stub's full-ring `int3`: the ring was drained before this; the stub retries.
    func exitlessFullRing(_ trap: inout GuestTrap) -> Bool {
        guard let exitless = patcher.exitless, exitless.isFullRingTrap(trap.state.registers.rip) else { return false }
        counters.withLock { $0.exitlessTraps += 1 }
        trap.resume.rip = trap.state.registers.rip &+ 1
        return true
    }
}
