import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import Synchronization
import X86

/// Tracks the guest kernel's allocators, one trap per event: it enables the kernel's own kmem
/// tracepoints (`kmalloc`, `kmem_cache_alloc`, `kfree`, `kmem_cache_free`) by turning their
/// jump-label sites into the jumps the kernel itself would write, makes their probe lists
/// non-null (so the enabled site calls the iterator), and traps the iterators' entries with
/// `out 0xEB, al`: the tracepoint's arguments are then in the registers, and the monitor returns
/// from the iterator at once (no probe ever runs). Frees without a tracepoint
/// (`kmem_cache_free_bulk`, `vfree`) are trapped at their entry. Events go to a
/// `KernelObjectLedger`. `disarm` puts back every byte.
public final class KernelAllocationTracker: GuestTrapHandler, Sendable {
    public let ledger: KernelObjectLedger
    public let clock: TrackerClock
    public let kernel: GuestKernel
    let patcher = KernelTextPatcher()
    let counters = Mutex(KernelTrackerCounters())
    /// The arming outcome (nil: not armed yet) and who to tell of it.
    let arming = Mutex<(outcome: Result<KernelArmingSummary, KernelTrackingError>?, callback: (@Sendable (Result<KernelArmingSummary, KernelTrackingError>) -> Void)?)>((nil, nil))
    /// The kernel's run-time minus link-time address (KASLR), known once armed.
    let slideValue = Atomic<UInt64>(0)
    /// The return site of followed calls (the `vfree` hook's address), 0 when there is none.
    let returnSite = Atomic<UInt64>(0)
    /// vmalloc and bulk allocation calls in flight, by the stack slot of their return address.
    let pending = Mutex(KernelPendingCalls())
    /// Slab cache names by the address of their `name` string.
    let cacheNames = Mutex([UInt64: String]())

    /// Deepest kernel stack recorded per event.
    public static let stackDepth = 16
    /// Most pointers read from one bulk free's array.
    static let maximumBulk: UInt64 = 1 << 16

    public init(kernel: GuestKernel, ledger: KernelObjectLedger = KernelObjectLedger(), clock: TrackerClock = TrackerClock()) {
        self.kernel = kernel
        self.ledger = ledger
        self.clock = clock
    }

    public var statistics: KernelTrackerCounters { counters.withLock { $0 } }

    /// What arming did, or why it failed; nil until the guest's user space started.
    public var armingOutcome: Result<KernelArmingSummary, KernelTrackingError>? { arming.withLock { $0.outcome } }

    /// Called once arming finished (on the vCPU thread that armed).
    public func onArmed(_ body: @escaping @Sendable (Result<KernelArmingSummary, KernelTrackingError>) -> Void) {
        arming.withLock { $0.callback = body }
    }

    /// The guest kernel's KASLR slide (run-time minus link-time addresses), 0 until armed.
    public var slide: UInt64 { slideValue.load(ordering: .relaxed) }

    /// `symbol+0xoff` of a run-time kernel address, or its hex value.
    public func describe(_ address: UInt64) -> String {
        guard let (symbol, offset) = kernel.symbols.symbol(containing: address &- slide) else { return "0x" + String(address, radix: 16) }
        return offset == 0 ? symbol.name : "\(symbol.name)+0x\(String(offset, radix: 16))"
    }

    /// How many patches the tracker has in the kernel now.
    public var patchesInPlace: Int { patcher.patchCount }

    // MARK: GuestTrapHandler

    /// The kernel tracker plants nothing in user space.
    public var wantsUserTraps: Bool { false }

    public func userSpaceStarted(_ state: VCPUSnapshot, memory: GuestMemory) {
        let first = arming.withLock { a -> Bool in
            guard a.outcome == nil else { return false }
            a.outcome = .failure(.alreadyArmed)
            return true
        }
        guard first else { return }
        let outcome = Result { () throws(KernelTrackingError) in try arm(memory: memory, vcpus: [state]) }
        let callback = arming.withLock { a in
            a.outcome = outcome
            return a.callback
        }
        callback?(outcome)
    }

    public func userBreakpoint(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool { false }

    public func userFetchFault(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool { false }

    public var kernelHookSites: [UInt64] { patcher.hookAddresses() }

    public func kernelHook(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        let registers = trap.state.registers
        guard let hook = patcher.hook(at: registers.rip) else { return false }
        let view = try? KernelView(kernel: kernel, memory: memory, vcpus: [trap.state])
        let context = EventContext(view: view, state: trap.state, time: clock.now)
        // A return into the return site, or a genuine call of the function hooked there.
        if registers.rip == returnSite.load(ordering: .relaxed),
           let (owner, events) = returned(registers: registers, context: context, resume: &trap.resume) {
            count(owner, events: events)
            return true
        }
        if hook.needsReturn {
            enter(hook, registers: registers, context: context)
            count(hook, events: 0)
            trap.resume.rip = registers.rip &+ 5
            return true
        }
        let events = record(hook, registers: registers, context: context)
        count(hook, events: events)
        // The return address is read through the trapped vCPU's own page tables (not a KernelView,
        // which needs the vCPU's LSTAR): the iterator must never run with the monitor's probe list.
        let space = AddressSpace(memory: memory, cr3: trap.state.cr3, cr4: trap.state.cr4)
        if hook.isTracepoint, let returnAddress = try? space.load(UInt64.self, at: GuestVirtualAddress(registers.rsp)) {
            // Leave the iterator as its `ret` would, returning 0: its probes never run.
            trap.resume.rip = returnAddress
            trap.resume.rsp = registers.rsp &+ 8
            trap.resume.rax = 0
        } else {
            if hook.isTracepoint { counters.withLock { $0.unreadableReturns += 1 } }
            trap.resume.rip = registers.rip &+ 5     // past the whole 5-byte nopl the hook replaced
        }
        return true
    }

    private func count(_ hook: KernelEventHook, events: Int) {
        counters.withLock { c in
            c.traps[hook.rawValue, default: 0] += 1
            c.events[hook.rawValue, default: 0] += events
        }
    }

    // MARK: arming

    /// Enables the four kmem tracepoints and hooks their iterators and the frees without one.
    /// A tracepoint that cannot be armed (a probe is registered: the guest traces it; its iterator
    /// is not hooked) is left out with a note; a failure of the jump table or of every tracepoint
    /// puts back what was written and fails.
    public func arm(memory: GuestMemory, vcpus: [VCPUSnapshot]) throws(KernelTrackingError) -> KernelArmingSummary {
        let view: KernelView
        do { view = try KernelView(kernel: kernel, memory: memory, vcpus: vcpus) } catch { throw .kernel(error) }
        do {
            return try arm(view: view)
        } catch {
            _ = patcher.restore(memory: memory)
            throw error
        }
    }

    private func arm(view: KernelView) throws(KernelTrackingError) -> KernelArmingSummary {
        let layout: KernelLayout.Kmem
        do { layout = try kernel.layout.kmem.get() } catch { throw .layout("\(error)") }
        let entries = try jumpTable(view: view, entrySize: layout.jumpEntrySize)
        // Zeros the kernel never writes: the probe list the enabled sites see (never iterated:
        // every call of the iterator is trapped at its entry and returned from).
        let emptyList: UInt64
        do { emptyList = try view.symbol("empty_zero_page").rawValue } catch { throw .kernel(error) }
        slideValue.store(view.slide, ordering: .relaxed)
        var summary = KernelArmingSummary()
        for hook in KernelEventHook.allCases {
            guard let tracepoint = hook.tracepoint else { continue }
            do {
                summary.jumpSites += try enable(tracepoint, hook: hook, entries: entries, emptyList: emptyList, layout: layout, view: view)
                summary.tracepoints.append(tracepoint)
                summary.entryHooks.append(hook.rawValue)
            } catch {
                summary.notes.append("tracepoint \(tracepoint) not armed: \(error)")
            }
        }
        guard !summary.tracepoints.isEmpty else { throw .jumpTable(summary.notes.joined(separator: "; ")) }
        for hook in [KernelEventHook.freeBulk, .vfree, .vmalloc, .allocBulk] {
            // Calls followed to their return need the return site (the vfree hook).
            if hook.needsReturn && summary.returnSite == 0 {
                summary.notes.append("\(hook.rawValue) not hooked: no return site (vfree is not hooked)")
                continue
            }
            do {
                let address = try patcher.hookEntry(hook, view: view)
                summary.entryHooks.append(hook.rawValue)
                if hook == .vfree {
                    summary.returnSite = address
                    returnSite.store(address, ordering: .relaxed)
                }
            } catch {
                summary.notes.append("\(hook.rawValue) not hooked: \(error)")
            }
        }
        return summary
    }

    /// The kernel's `__jump_table` (between `__start___jump_table` and `__stop___jump_table`), decoded.
    func jumpTable(view: KernelView, entrySize: Int) throws(KernelTrackingError) -> [KernelJumpEntry] {
        guard entrySize == KernelJumpEntry.size else { throw .jumpTable("struct jump_entry is \(entrySize) bytes, not 16") }
        let start: UInt64, stop: UInt64
        do {
            start = try view.symbol("__start___jump_table").rawValue
            stop = try view.symbol("__stop___jump_table").rawValue
        } catch { throw .kernel(error) }
        guard stop > start, stop - start <= 16 << 20, (stop - start) % 16 == 0 else {
            throw .jumpTable("its bounds 0x\(String(start, radix: 16))...0x\(String(stop, radix: 16)) are implausible")
        }
        var bytes: [UInt8] = []
        var address = start
        while address < stop {
            let chunk = Int(min(stop - address, 1 << 16))
            bytes += try patcher.read(address, count: chunk, view: view, what: "the jump table")
            address += UInt64(chunk)
        }
        return KernelJumpEntry.table(bytes, start: start)
    }

    /// Hooks `hook`'s iterator, points the tracepoint's probe list at `emptyList`, and turns every
    /// jump-label site of its key (outside init text) into its jump. Returns the sites turned.
    private func enable(_ tracepoint: String, hook: KernelEventHook, entries: [KernelJumpEntry], emptyList: UInt64,
                        layout: KernelLayout.Kmem, view: KernelView) throws(KernelTrackingError) -> Int {
        let base: UInt64
        do { base = try view.symbol("__tracepoint_" + tracepoint).rawValue } catch { throw .kernel(error) }
        let key = base &+ UInt64(layout.tracepointKey)
        let funcs = base &+ UInt64(layout.tracepointFuncs)
        let sites = entries.filter { $0.key == key && !$0.inInitText && !$0.defaultsToJump }
        guard !sites.isEmpty else { throw .jumpTable("no jump-label site uses __tracepoint_\(tracepoint).key") }
        // The site bytes first, so that nothing is written when one is not the nop expected.
        var planned: [(code: UInt64, nop: [UInt8], jump: [UInt8])] = []
        for site in sites {
            let bytes = try patcher.read(site.code, count: 5, view: view, what: "a jump-label site of \(tracepoint)")
            guard let size = JumpLabelCode.size(of: bytes), let nop = JumpLabelCode.nop(size: size), bytes.starts(with: nop),
                  (site.code & 0xFFF) + UInt64(size) <= 4096, let jump = JumpLabelCode.jump(from: site.code, to: site.target, size: size) else {
                throw .unexpectedBytes("the jump-label site of \(tracepoint) at 0x\(String(site.code, radix: 16))", bytes)
            }
            planned.append((site.code, nop, jump))
        }
        // A probe registered (the guest traces this tracepoint): its list is the guest's, leave it.
        let probes = try patcher.read(funcs, count: 8, view: view, what: "__tracepoint_\(tracepoint).funcs")
        guard probes == [UInt8](repeating: 0, count: 8) else {
            throw .unexpectedBytes("__tracepoint_\(tracepoint).funcs (a probe is registered: the guest traces it)", probes)
        }
        // Order: the hook, then the probe list, then the sites (detach undoes it in reverse), so
        // the iterator is trapped whenever the list is ours, and the list is ours whenever a site jumps.
        // A failure half-way takes back this tracepoint's patches.
        let before = patcher.patchCount
        do {
            _ = try patcher.hookEntry(hook, view: view)
            try patcher.patch(.probeList(tracepoint: tracepoint), at: funcs, expecting: [UInt8](repeating: 0, count: 8),
                              writing: Self.littleEndian(emptyList), view: view)
            for site in planned {
                try patcher.patch(.jumpSite(tracepoint: tracepoint), at: site.code, expecting: site.nop, writing: site.jump, view: view)
            }
        } catch {
            patcher.rollBack(to: before, memory: view.memory)
            throw error
        }
        return planned.count
    }

    static func littleEndian(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    /// Puts back every kernel byte the tracker changed, and the return addresses of the calls
    /// in flight. Call with the guest paused.
    public func disarm(_ guest: PausedGuest) -> KernelRestoreSummary {
        arming.withLock { $0.outcome = .failure(.disarmed) }
        let view = try? KernelView(kernel: kernel, memory: guest.memory, vcpus: guest.vcpus)
        let returns = restorePendingReturns(view: view)
        var summary = patcher.restore(memory: guest.memory)
        summary.returnAddressesRestored = returns
        returnSite.store(0, ordering: .relaxed)
        return summary
    }
}
