import AllocationTracking
import GuestMemory
import Introspection
import Synchronization
import VMM

/// Tracks the guest's user-space allocators: arms `int3` on glibc's and libstdc++'s allocator
/// entry points in the page cache, hooks the kernel's `mmap_region` (to arm files as they are
/// mapped) and `exit_mmap` (to close a process's ledger), and turns the traps into ledger events.
/// Allocation results are read when the function returns into an unmapped trampoline page.
public final class UserAllocationTracker: GuestTrapHandler, Sendable {
    public let ledger = AllocationLedger()
    let kernel: GuestKernel
    let files: GuestSymbolFiles
    let clock = TrackerClock()
    let table = Mutex(BreakpointTable())
    let calls = Mutex(PendingCalls())
    let siteCache = Mutex([String: [AllocatorSite]]())
    let counters = Mutex(TrackerCounters())
    let armingLock = Mutex(())
    let spaces = Mutex([UInt64: SpaceInfo]())
    /// Address spaces that existed before arming: their releases of blocks allocated earlier are
    /// not findings.
    let preexisting = Mutex(Set<UInt64>())
    let armed = Mutex<Result<ArmingSummary, any Error>?>(nil)
    let armedCallback = Mutex<(@Sendable (Result<ArmingSummary, any Error>) -> Void)?>(nil)

    /// The return trampoline: the last page below the top of the x86-64 user address space,
    /// which Linux never maps (TASK_SIZE ends before it), so a return there always faults.
    static let trampoline: UInt64 = 0x7FFF_FFFF_F000

    /// Which entry points to arm: all of them, or only the C allocator's (C++ `new`/`delete`
    /// are then seen as the `malloc`/`free` they call: fewer traps, no mismatch findings).
    let includesOperators: Mutex<Bool>

    /// Reachability scans of the tracked processes; a process is scanned as it exits when
    /// `scansAtExit` is set.
    public let scanner: ReachabilityScanner
    let scansAtExit: Bool

    /// - Parameters:
    ///   - staleAfter: seconds without a write after which a referenced block counts as stale.
    public init(kernel: GuestKernel, files: GuestSymbolFiles, includeOperators: Bool = true, scansAtExit: Bool = true,
                staleAfter: Double = 60) {
        self.kernel = kernel
        self.files = files
        self.includesOperators = Mutex(includeOperators)
        self.scansAtExit = scansAtExit
        scanner = ReachabilityScanner(kernel: kernel, ledger: ledger, clock: clock, staleAfter: UInt64(max(0, staleAfter) * 1e9))
    }

    /// Changes which entry points the next `arm` arms (after `disarm`).
    public func setIncludesOperators(_ value: Bool) {
        includesOperators.withLock { $0 = value }
    }

    /// Seconds since tracking started.
    public var seconds: Double { Double(clock.now) / 1e9 }

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

    public func userBreakpoint(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        let state = trap.state
        let user = UserMemory(memory: memory, cr3: state.cr3, cr4: state.cr4)
        guard let physical = try? user.physicalAddress(of: state.registers.rip).rawValue,
              let armed = table.withLock({ $0.sites[physical] }) else { return false }
        do {
            try enter(armed.site, trap: &trap, user: user, memory: memory)
        } catch {
            // The thread's memory is not what an allocator call looks like: run the displaced
            // instruction only, so the guest goes on as if there were no breakpoint.
            counters.withLock { $0.unreadableCalls += 1 }
            if Self.tracing { Self.trace("vcpu\(state.index) \(armed.site.symbol): not an allocator call as expected: \(error)") }
            var registers = state.registers
            do { try runDisplaced(armed.site, &registers, user: user) } catch { return false }
            trap.resume = registers
        }
        return true
    }

    public func userFetchFault(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        guard trap.state.registers.rip == Self.trampoline else { return false }
        let handled = complete(&trap, memory: memory)
        if !handled, Self.tracing { Self.trace("vcpu\(trap.state.index) trampoline fault with no call in flight at rsp \(hex(trap.state.registers.rsp))") }
        return handled
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

    /// Executes the instruction the `int3` displaced, in the thread's address space.
    func runDisplaced(_ site: AllocatorSite, _ registers: inout GeneralRegisters, user: UserMemory) throws {
        try site.instruction.execute(&registers, readMemory: { try user.read($0, count: $1) },
                                     writeMemory: { try user.write($0, $1) })
    }

    /// CR3 without PCID and flag bits: the page-table root that names an address space.
    static func root(_ cr3: UInt64) -> UInt64 { cr3 & 0x000F_FFFF_FFFF_F000 }
}

/// Trap and event counts, for the closing line and the benchmark.
public struct TrackerCounters: Sendable, Codable {
    public init() {}
    public var entries = 0
    public var nestedEntries = 0
    public var returns = 0
    public var releases = 0
    public var unreadableCalls = 0
    public var mmapHooks = 0
    public var exitHooks = 0
    public var sitesArmed = 0
}
