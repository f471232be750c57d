import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import Synchronization
import X86

/// Tracks the guest's user-space allocators: the trap adapter between the vCPUs
/// (`GuestTrapHandler`) and the pieces that each do one job: `PageCachePatcher` arms `int3` on
/// glibc's and libstdc++'s allocator entry points in the page cache and hooks the kernel's
/// `mmap_region` (to arm files as they are mapped) and `exit_mmap` (to close a process's ledger);
/// `CallTracker` decides what each trap means; `ProcessIdentifier` says which process and thread
/// made a call. The adapter reads and writes the trapped thread's memory and applies the
/// decisions to the ledger. Allocation results are read when the function returns into an
/// unmapped trampoline page.
public final class UserAllocationTracker: GuestTrapHandler, Sendable {
    public let ledger: AllocationLedger
    public let clock: TrackerClock
    let patcher: PageCachePatcher
    let identifier: ProcessIdentifier
    let notes: TrackerNotes
    /// Guards the calls in flight and the rules over them.
    let calls = Mutex(CallTracker())
    /// Guards the trap and event counts.
    let counters = Mutex(TrackerCounters())
    /// Guards which address spaces predate arming, were abandoned, or had a trampoline fault noted.
    let spaces = Mutex(TrackedSpaces())
    /// Guards the threads that died in their group's exit, by `mm`, until the space's exit scan.
    let exitedThreads = Mutex(ExitedThreads())
    /// Guards the arming outcome and who to tell of it.
    let arming = Mutex(ArmingProgress())
    /// Whether breakpoints or trampolines may be in the guest (false after `disarm`).
    let trapping = Atomic<Bool>(true)
    /// Told of the calls in flight before each trampoline is written (`setJournal`).
    let callJournal = Mutex<(@Sendable (CallsInFlight) -> Void)?>(nil)

    /// CR4 and EFER as user space first ran (the same on every vCPU): for reading a process's
    /// memory outside one of its traps (draining rings before a scan).
    let pagingRegisters = Mutex<(cr4: UInt64, efer: UInt64)>((0, 0))
    /// A vCPU's state at the last user trap that drained a ring: what a drain outside a trap
    /// builds its view of the guest kernel from.
    let lastUserState = Mutex<VCPUSnapshot?>(nil)
    /// Held while a ring's records are taken and recorded (`drainRing`).
    let ringOrder = Mutex(())
    /// A detach that waits for threads to leave the exitless path (`finishExitlessDetach`).
    let exitlessDetach = Mutex<PendingExitlessDetach?>(nil)

    /// Told of each tracked address space as it is torn down, before the ledger retires it (the
    /// reachability scanner's final scan of a process).
    let exitObserver: (@Sendable (AddressSpaceExit) -> Void)?

    /// - Parameters:
    ///   - ledger: where the allocator events go; `clock` dates them.
    ///   - includeOperators: arm the C++ `operator new`/`delete` too, or only the C allocator's
    ///     entry points (`new`/`delete` are then seen as the `malloc`/`free` they call).
    ///   - onAddressSpaceExit: called on the vCPU thread of each `exit_mmap` hook of a tracked space.
    ///   - monitorRegion: memory of the machine's own for the exitless release path
    ///     (`docs/exitless-tracking.md`); nil: every allocator event is a trap.
    ///   - exitlessRingRecords: records in each process's ring (a power of two in
    ///     `exitlessRingRecordRange`).
    public init(kernel: GuestKernel, files: GuestSymbolFiles, ledger: AllocationLedger = AllocationLedger(),
                clock: TrackerClock = TrackerClock(), includeOperators: Bool = true,
                onAddressSpaceExit: (@Sendable (AddressSpaceExit) -> Void)? = nil, monitorRegion: MonitorRegion? = nil,
                exitlessRingRecords: Int = UserAllocationTracker.exitlessRingRecords) {
        self.ledger = ledger
        self.clock = clock
        self.notes = TrackerNotes()
        self.patcher = PageCachePatcher(kernel: kernel, files: files, notes: notes, includeOperators: includeOperators,
                                        exitless: monitorRegion.map { ExitlessPath(region: $0, ringCapacity: exitlessRingRecords) })
        self.identifier = ProcessIdentifier(kernel: kernel, ledger: ledger, files: files)
        self.exitObserver = onAddressSpaceExit
    }

    /// Records in each process's exitless event ring by default, and the sizes accepted
    /// (`--exitless-ring-records`: powers of two in the range).
    public static let exitlessRingRecords = ExitlessLayout.ringCapacity
    public static let exitlessRingRecordRange = ExitlessLayout.ringCapacities
    /// The monitor region an exitless run gives the machine: the code pages and about 470
    /// windows of 1.1 MiB (one per PGD frame a process that called an allocator ever had; host
    /// memory is only used as pages are touched).
    public static let exitlessRegionBytes: UInt64 = 512 << 20

    /// Frames an allocation stack keeps by default, the allocator's own included: valgrind's.
    public static let defaultStackDepth = 12
    /// The stack depths `setStackDepth` (and `--stack-depth`) accept.
    public static let stackDepths = 2...256

    /// Frames each allocation stack keeps from now on, the allocator's own included (clamped to
    /// `stackDepths`).
    public func setStackDepth(_ frames: Int) {
        identifier.stackDepth.store(min(max(Self.stackDepths.lowerBound, frames), Self.stackDepths.upperBound), ordering: .relaxed)
    }

    /// Changes which entry points the next `arm` arms (after `disarm`).
    public func setIncludesOperators(_ value: Bool) {
        patcher.setIncludesOperators(value)
    }

    /// Seconds since tracking started.
    public var seconds: Double { clock.seconds }

    public var statistics: TrackerCounters {
        var counts = counters.withLock { $0 }
        counts.ringRecordsDropped += patcher.exitless?.malformedRecords ?? 0
        return counts
    }

    /// Notes about files and functions that could not be armed.
    public var diagnostics: [String] { notes.all }

    /// What arming did, or why it failed; nil until the guest's user space started.
    public var armingOutcome: Result<ArmingSummary, any Error>? { arming.withLock { $0.outcome } }

    /// Called once arming finished (on the vCPU thread that armed).
    public func onArmed(_ body: @escaping @Sendable (Result<ArmingSummary, any Error>) -> Void) {
        arming.withLock { $0.callback = body }
    }

    // MARK: GuestTrapHandler

    /// Whether release entries may get the exitless path (the machine gave a monitor region).
    public var usesExitlessPath: Bool { patcher.exitless != nil }

    public func userSpaceStarted(_ state: VCPUSnapshot, memory: GuestMemory) {
        pagingRegisters.withLock { $0 = (state.cr4, state.efer) }
        lastUserState.withLock { $0 = state }
        let first = arming.withLock { a -> Bool in
            guard a.outcome == nil else { return false }
            a.outcome = .failure(TrackerError.arming)
            return true
        }
        guard first else { return }
        let outcome = Result { () throws(TrackerError) in try arm(memory: memory, vcpus: [state]) }.mapError { $0 as any Error }
        let callback = arming.withLock { a in
            a.outcome = outcome
            return a.callback
        }
        callback?(outcome)
    }

    /// True until detach, and while a detach waits for threads to leave the exitless path (a
    /// thread there may still fault at its window).
    public var wantsUserTraps: Bool { trapping.load(ordering: .relaxed) || exitlessDetachPending }

    public func userBreakpoint(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        let state = trap.state
        drainRing(of: state, memory: memory)
        if exitlessFullRing(&trap) { return true }
        let user = UserMemory(memory: memory, cr3: state.cr3, cr4: state.cr4, efer: state.efer)
        guard let physical = try? user.physicalAddress(of: state.registers.rip),
              let armed = patcher.site(at: physical) else { return false }
        let root = PageTableRoot(cr3: state.cr3)
        // First, whether the thread could make the displaced instruction's own accesses: if not, it
        // takes the fault that instruction takes (a copy-on-write stack page is then copied by the
        // guest kernel and the `int3` is met again), and nothing is recorded.
        do {
            try user.checkAccesses(of: armed.site.instruction, registers: state.registers)
        } catch let fault as UserAccessFault {
            trap.exception = InjectedException(fault, stack: armed.site.instruction.addressesStack)
            counters.withLock { $0.faultsDelivered += 1 }
            if Self.tracing { Self.trace("vcpu\(state.index) \(armed.site.symbol): \(fault): delivered to the guest") }
            return true
        } catch {
            abandon(root, "\(armed.site.symbol) at \(hex(state.registers.rip)): the displaced instruction cannot be run: \(error)")
            return false
        }
        if spaces.withLock({ $0.abandoned.contains(root) }) {
            return runDisplacedOnly(armed.site, &trap, user: user)
        }
        do {
            try enter(armed.site, trap: &trap, user: user, memory: memory)
        } catch {
            // The thread's memory is not what an allocator call looks like (or its return slot is
            // not writable for it): run the displaced instruction only, untracked.
            counters.withLock { $0.unreadableCalls += 1 }
            if Self.tracing { Self.trace("vcpu\(state.index) \(armed.site.symbol): not an allocator call as expected: \(error)") }
            return runDisplacedOnly(armed.site, &trap, user: user)
        }
        return true
    }

    public func userFetchFault(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        drainRing(of: trap.state, memory: memory)
        if let handled = exitlessFault(&trap, memory: memory) { return handled }
        guard trap.state.registers.rip == CallTracker.trampoline else { return false }
        return complete(&trap, memory: memory)
    }

    public var kernelHookSites: [UInt64] { patcher.hookAddresses() }

    public func kernelHook(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        guard let hook = patcher.hook(at: GuestVirtualAddress(trap.state.registers.rip)) else { return false }
        if hook.kind != .exitMmap { drainRing(of: trap.state, memory: memory) }
        switch hook.kind {
        case .mmapRegion: mapped(file: trap.state.registers.rdi, trap: trap, memory: memory)
        case .exitMmap: exiting(mm: trap.state.registers.rdi, trap: trap, memory: memory)
        case .doExit: threadExiting(trap: trap, memory: memory)
        }
        trap.resume.rip = hook.address.rawValue &+ 5     // past the whole 5-byte nopl the hook replaced
        return true
    }

    /// Runs only the displaced instruction; a failure (the thread's memory changed under us) ends
    /// the tracking of that process with a note, and the guest then sees the `int3`.
    private func runDisplacedOnly(_ site: AllocatorSite, _ trap: inout GuestTrap, user: UserMemory) -> Bool {
        var registers = trap.state.registers
        do {
            try runDisplaced(site, &registers, user: user)
        } catch {
            abandon(PageTableRoot(cr3: trap.state.cr3), "\(site.symbol) at \(hex(trap.state.registers.rip)): \(error)")
            return false
        }
        trap.resume = registers
        return true
    }

    /// Stops tracking an address space after something the monitor did not expect, with a note;
    /// its breakpoints then only run the displaced instruction.
    func abandon(_ root: PageTableRoot, _ why: String) {
        let first = spaces.withLock { $0.abandoned.insert(root).inserted }
        guard first else { return }
        notes.add("address space \(hex(root.rawValue)): tracking ended: \(why)")
    }

    /// Executes the instruction the `int3` displaced, in the thread's address space, with its rights.
    func runDisplaced(_ site: AllocatorSite, _ registers: inout GeneralRegisters, user: UserMemory) throws {
        try site.instruction.execute(&registers, readMemory: { try user.read($0, count: $1) },
                                     writeMemory: { try user.write($0, $1) })
    }
}

/// What a detach still has to do for the exitless path once no thread is on it.
struct PendingExitlessDetach: Sendable {
    var padding: [ExitlessArmedSite]
    /// Exitless allocation calls in flight at the detach: their function returns into a stub.
    var callsInFlight: [StackSlot] = []
    var pagesBefore: [GuestPhysicalAddress: [UInt8]]
    var summary: ArmingSummary
}

/// Whether arming ran, and who to tell when it has.
struct ArmingProgress: Sendable {
    /// nil until the guest's user space started; `.failure(.arming)` while arming runs.
    var outcome: Result<ArmingSummary, any Error>?
    var callback: (@Sendable (Result<ArmingSummary, any Error>) -> Void)?
}

extension PrologueInstruction {
    /// Whether its memory operand is addressed through rsp (`push`): a non-canonical one raises #SS.
    var addressesStack: Bool {
        if case .push = operation { return true }
        return false
    }
}
