import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import Synchronization
import X86

/// Tracks the guest's user-space allocators: arms `int3` on glibc's and libstdc++'s allocator
/// entry points in the page cache, hooks the kernel's `mmap_region` (to arm files as they are
/// mapped) and `exit_mmap` (to close a process's ledger), and turns the traps into ledger events.
/// Allocation results are read when the function returns into an unmapped trampoline page.
public final class UserAllocationTracker: GuestTrapHandler, Sendable {
    public let ledger: AllocationLedger
    let kernel: GuestKernel
    let files: GuestSymbolFiles
    public let clock: TrackerClock
    let table = Mutex(BreakpointTable())
    let calls = Mutex(PendingCalls())
    let siteCache = Mutex([String: [AllocatorSite]]())
    let counters = Mutex(TrackerCounters())
    let armingLock = Mutex(())
    let spaces = Mutex([PageTableRoot: SpaceInfo]())
    /// Address spaces that existed before arming: their releases of blocks allocated earlier are
    /// not findings.
    let preexisting = Mutex(Set<PageTableRoot>())
    /// Address spaces whose tracking ended after an unexpected failure (noted in `diagnostics`).
    let abandoned = Mutex(Set<PageTableRoot>())
    /// Address spaces with a trampoline fault noted already.
    let trampolineNoted = Mutex(Set<PageTableRoot>())
    /// Whether breakpoints or trampolines may be in the guest (false after `disarm`).
    let trapping = Atomic<Bool>(true)
    let armed = Mutex<Result<ArmingSummary, any Error>?>(nil)
    let armedCallback = Mutex<(@Sendable (Result<ArmingSummary, any Error>) -> Void)?>(nil)

    /// The return trampoline: the last page below the top of the x86-64 user address space,
    /// which Linux never maps (TASK_SIZE ends before it), so a return there always faults.
    static let trampoline: UInt64 = 0x7FFF_FFFF_F000

    /// Which entry points to arm: all of them, or only the C allocator's (C++ `new`/`delete`
    /// are then seen as the `malloc`/`free` they call: fewer traps, no mismatch findings).
    let includesOperators: Mutex<Bool>

    /// Told of each tracked address space as it is torn down, before the ledger retires it (the
    /// reachability scanner's final scan of a process).
    let exitObserver: (@Sendable (AddressSpaceExit) -> Void)?

    /// - Parameters:
    ///   - ledger: where the allocator events go; `clock` dates them.
    ///   - onAddressSpaceExit: called on the vCPU thread of each `exit_mmap` hook of a tracked space.
    public init(kernel: GuestKernel, files: GuestSymbolFiles, ledger: AllocationLedger = AllocationLedger(),
                clock: TrackerClock = TrackerClock(), includeOperators: Bool = true,
                onAddressSpaceExit: (@Sendable (AddressSpaceExit) -> Void)? = nil) {
        self.kernel = kernel
        self.files = files
        self.ledger = ledger
        self.clock = clock
        self.includesOperators = Mutex(includeOperators)
        self.exitObserver = onAddressSpaceExit
    }

    /// Changes which entry points the next `arm` arms (after `disarm`).
    public func setIncludesOperators(_ value: Bool) {
        includesOperators.withLock { $0 = value }
    }

    /// Seconds since tracking started.
    public var seconds: Double { clock.seconds }

    public var statistics: TrackerCounters { counters.withLock { $0 } }

    /// Notes about files and functions that could not be armed.
    public var diagnostics: [String] { table.withLock { $0.diagnostics } }

    /// What arming did, or why it failed; nil until the guest's user space started.
    public var armingOutcome: Result<ArmingSummary, any Error>? { armed.withLock { $0 } }

    /// Called once arming finished (on the vCPU thread that armed).
    public func onArmed(_ body: @escaping @Sendable (Result<ArmingSummary, any Error>) -> Void) {
        armedCallback.withLock { $0 = body }
    }

    // MARK: GuestTrapHandler

    public func userSpaceStarted(_ state: VCPUSnapshot, memory: GuestMemory) {
        let first = armed.withLock { a -> Bool in
            guard a == nil else { return false }
            a = .failure(TrackerError.arming)
            return true
        }
        guard first else { return }
        let outcome: Result<ArmingSummary, any Error> = Result { try arm(memory: memory, vcpus: [state]) }
        armed.withLock { $0 = outcome }
        armedCallback.withLock { $0 }?(outcome)
    }

    public var wantsUserTraps: Bool { trapping.load(ordering: .relaxed) }

    public func userBreakpoint(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        let state = trap.state
        let user = UserMemory(memory: memory, cr3: state.cr3, cr4: state.cr4, efer: state.efer)
        guard let physical = try? user.physicalAddress(of: state.registers.rip).rawValue,
              let armed = table.withLock({ $0.sites[physical] }) else { return false }
        let root = Self.root(state.cr3)
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
        if abandoned.withLock({ $0.contains(root) }) {
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

    /// Runs only the displaced instruction; a failure (the thread's memory changed under us) ends
    /// the tracking of that process with a note, and the guest then sees the `int3`.
    private func runDisplacedOnly(_ site: AllocatorSite, _ trap: inout GuestTrap, user: UserMemory) -> Bool {
        var registers = trap.state.registers
        do {
            try runDisplaced(site, &registers, user: user)
        } catch {
            abandon(Self.root(trap.state.cr3), "\(site.symbol) at \(hex(trap.state.registers.rip)): \(error)")
            return false
        }
        trap.resume = registers
        return true
    }

    /// Stops tracking an address space after something the monitor did not expect, with a note;
    /// its breakpoints then only run the displaced instruction.
    func abandon(_ root: PageTableRoot, _ why: String) {
        let first = abandoned.withLock { $0.insert(root).inserted }
        guard first else { return }
        table.withLock { $0.note("address space \(hex(root.rawValue)): tracking ended: \(why)") }
    }

    public func userFetchFault(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        guard trap.state.registers.rip == Self.trampoline else { return false }
        return complete(&trap, memory: memory)
    }

    public func kernelHook(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        guard let hook = table.withLock({ $0.hooks[trap.state.registers.rip] }) else { return false }
        switch hook.kind {
        case .mmapRegion: mapped(file: trap.state.registers.rdi, trap: trap, memory: memory)
        case .exitMmap: exiting(mm: trap.state.registers.rdi, trap: trap, memory: memory)
        }
        trap.resume.rip = hook.address &+ 5     // past the whole 5-byte nopl the hook replaced
        return true
    }

    /// Executes the instruction the `int3` displaced, in the thread's address space, with its rights.
    func runDisplaced(_ site: AllocatorSite, _ registers: inout GeneralRegisters, user: UserMemory) throws {
        try site.instruction.execute(&registers, readMemory: { try user.read($0, count: $1) },
                                     writeMemory: { try user.write($0, $1) })
    }


    /// CR3 without PCID and flag bits: the page-table root that names an address space.
    static func root(_ cr3: UInt64) -> PageTableRoot { PageTableRoot(cr3: cr3) }
}

/// Trap and event counts, for the closing line and the benchmark.
public struct TrackerCounters: Sendable, Codable {
    public init() {}
    public var entries = 0
    public var nestedEntries = 0
    public var returns = 0
    public var releases = 0
    public var unreadableCalls = 0
    /// Faults delivered to the guest in place of a displaced instruction's access it could not make.
    public var faultsDelivered = 0
    /// Faults at the return trampoline not taken as a return (passed to the guest).
    public var trampolineFaultsDeclined = 0
    public var mmapHooks = 0
    public var exitHooks = 0
    public var sitesArmed = 0
}

extension PrologueInstruction {
    /// Whether its memory operand is addressed through rsp (`push`): a non-canonical one raises #SS.
    var addressesStack: Bool {
        if case .push = operation { return true }
        return false
    }
}
