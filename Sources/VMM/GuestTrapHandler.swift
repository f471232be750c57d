import GuestMemory
import Introspection

/// A guest thread stopped at a trap that a `GuestTrapHandler` may own. `state.registers` are the
/// thread's registers at the trap (for user traps: the user's, with `rip` at the `int3` or at the
/// faulting fetch address); the handler edits `resume` to say where and how the thread goes on.
public struct GuestTrap: Sendable {
    /// The vCPU as the trapped code sees it (privilege level 3 for user traps, 0 for kernel hooks).
    public let state: VCPUSnapshot
    /// FS base of the trapped thread (its TLS pointer in user space: one per thread).
    public let fsBase: UInt64
    /// Registers the thread resumes with; starts equal to `state.registers`.
    public var resume: GeneralRegisters

    public init(state: VCPUSnapshot, fsBase: UInt64) {
        self.state = state
        self.fsBase = fsBase
        self.resume = state.registers
    }
}

/// Owner of breakpoints the monitor plants in the guest. Called on vCPU threads, concurrently.
/// Each method returns true when the trap was the handler's (the thread then resumes with
/// `trap.resume`) and false to let the guest see the event as it would without the monitor.
public protocol GuestTrapHandler: AnyObject, Sendable {
    /// The guest's first user-mode code was seen (on some vCPU): its kernel is fully set up, so
    /// breakpoints can be placed. Called at most once per vCPU; `state` is that vCPU's.
    func userSpaceStarted(_ state: VCPUSnapshot, memory: GuestMemory)
    /// A user-mode `int3` at `trap.state.registers.rip`.
    func userBreakpoint(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool
    /// A user-mode instruction fetch from the not-present address `trap.state.registers.rip`.
    func userFetchFault(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool
    /// Kernel code wrote to `KernelHookPort.port`; `trap.state.registers.rip` is the hook site.
    func kernelHook(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool
}

/// The I/O port whose writes mark the monitor's kernel hooks: a 2-byte `out imm8, al` planted over
/// a function's 5-byte ftrace `nopl` exits to the monitor on every host (KVM_EXIT_IO).
public enum KernelHookPort {
    public static let port: UInt16 = 0xEB
    /// The planted instruction: `out 0xEB, al`.
    public static let instruction: [UInt8] = [0xE6, 0xEB]
}
