import GuestMemory
import X86

/// A guest thread stopped at a trap that a `GuestTrapHandler` may own. `state.registers` are the
/// thread's registers at the trap (for user traps: the user's, with `rip` at the `int3` or at the
/// faulting fetch address); the handler edits `resume` to say where and how the thread goes on.
public struct GuestTrap: Sendable {
    /// The vCPU as the trapped code sees it (privilege level 3 for user traps, 0 for kernel hooks).
    public let state: VCPUSnapshot
    /// FS base of the trapped thread (its TLS pointer in user space: one per thread; user-controlled).
    public let fsBase: UInt64
    /// The exception's error code from the frame (a page fault's), nil for `int3` and kernel hooks.
    public let errorCode: UInt64?
    /// CR2 at the trap: the faulting linear address of a page fault.
    public let faultAddress: UInt64
    /// Registers the thread resumes with; starts equal to `state.registers`.
    public var resume: GeneralRegisters
    /// Set by the handler when the thread must instead take this exception, as the instruction
    /// the handler would have emulated takes it: the thread is put back in user mode with
    /// `resume` and the exception is delivered to the guest kernel.
    public var exception: InjectedException?

    public init(state: VCPUSnapshot, fsBase: UInt64, errorCode: UInt64? = nil, faultAddress: UInt64 = 0) {
        self.state = state
        self.fsBase = fsBase
        self.errorCode = errorCode
        self.faultAddress = faultAddress
        self.resume = state.registers
    }
}

/// An exception the monitor delivers to a user thread in place of an access it declined to make
/// for it (the access the thread's own instruction would fault on).
public struct InjectedException: Sendable, Equatable {
    public var vector: UInt8
    public var errorCode: UInt32?
    /// CR2 for a page fault.
    public var faultAddress: UInt64?

    public init(vector: UInt8, errorCode: UInt32?, faultAddress: UInt64? = nil) {
        self.vector = vector
        self.errorCode = errorCode
        self.faultAddress = faultAddress
    }

    /// The exception a user-mode access takes for `fault`; `stack` says the access is addressed
    /// through rsp (a non-canonical address then raises #SS rather than #GP).
    public init(_ fault: UserAccessFault, stack: Bool) {
        switch fault {
        case .pageFault(let address, let errorCode): self.init(vector: 14, errorCode: errorCode, faultAddress: address)
        case .nonCanonical: self.init(vector: stack ? 12 : 13, errorCode: 0)
        }
    }
}

/// Owner of breakpoints the monitor plants in the guest. Called on vCPU threads, concurrently.
/// Each method returns true when the trap was the handler's (the thread then resumes with
/// `trap.resume`) and false to let the guest see the event as it would without the monitor.
public protocol GuestTrapHandler: AnyObject, Sendable {
    /// Whether the handler may have breakpoints or return trampolines in the guest (true until it
    /// detaches). While false, the vCPUs drop the gate breakpoints only the handler needs.
    var wantsUserTraps: Bool { get }
    /// The guest's first user-mode code was seen (on some vCPU): its kernel is fully set up, so
    /// breakpoints can be placed. Called at most once per vCPU; `state` is that vCPU's.
    func userSpaceStarted(_ state: VCPUSnapshot, memory: GuestMemory)
    /// A user-mode `int3` at `trap.state.registers.rip`.
    func userBreakpoint(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool
    /// A user-mode page fault whose frame rip is `trap.state.registers.rip` (error code and CR2 in
    /// `trap`): a return into the handler's trampoline is one.
    func userFetchFault(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool
    /// Kernel code wrote to `KernelHookPort.port`; `trap.state.registers.rip` is the hook site.
    func kernelHook(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool
    /// The kernel virtual addresses of the hooks planted now. A backend whose hypervisor does not
    /// exit on the hook's `out` (a QEMU process) stops there with a breakpoint of its own instead.
    var kernelHookSites: [UInt64] { get }
}

/// The I/O port whose writes mark the monitor's kernel hooks: a 2-byte `out imm8, al` planted over
/// a function's 5-byte ftrace `nopl` exits to the monitor on every host (KVM_EXIT_IO).
public enum KernelHookPort {
    public static let port: UInt16 = 0xEB
    /// The planted instruction: `out 0xEB, al`.
    public static let instruction: [UInt8] = [0xE6, 0xEB]
}
