import CKVM
import GuestInterface
import GuestMemory
import KVM
import X86

/// kvm_pvm's half-done `syscall` (see docs/host-notes.md): the host loads RIP from LSTAR, RCX,
/// R11 and the masked RFLAGS but leaves CS at 0x33, so the kernel's entry faults (#PF at LSTAR,
/// CPL3). This per-host piece finishes a transition at CPL0, and only one that a `syscall`
/// instruction started: a user `jmp` to LSTAR must stay a fault (it would otherwise enter the
/// kernel with the caller's RCX/R11, interrupts on, before `swapgs`). Hosts with VMX/SVM have none.
public struct SystemCallCompletion: Sendable {
    static let msrFMASK: UInt32 = 0xC000_0084
    static let interruptFlag: UInt64 = 1 << 9
    static let resumeFlag: UInt64 = 1 << 16

    /// IA32_FMASK, read once it is set (the kernel writes it with LSTAR in syscall_init).
    private var fmask: UInt64 = 0

    public init() {}

    /// What the #PF/#GP gate saw of a fault at LSTAR.
    struct Evidence: Sendable {
        var frameRIP: UInt64
        var frameCS: UInt64
        var frameRFLAGS: UInt64
        var rcx: UInt64
        var r11: UInt64
        var lstar: UInt64
        var fmask: UInt64
        /// The two bytes before the return address (rcx), read as a user-mode fetch; nil if it faults.
        var instructionBefore: [UInt8]?
    }

    /// Whether the fault is the one a user-mode `syscall` leaves here: the frame is at LSTAR from
    /// CPL3; rcx is a user address right after a `0f 05`; the frame's RFLAGS are r11 (the RFLAGS
    /// `syscall` saved, interrupts on as always in user mode) masked with FMASK, which must clear
    /// IF — a user `jmp` cannot clear IF, so this is what no forgery can produce.
    static func isRealSystemCall(_ e: Evidence) -> Bool {
        let flagsCompared = ~resumeFlag
        return e.lstar != 0 && e.frameRIP == e.lstar && e.frameCS & 3 == 3
            && e.rcx >= 2 && e.rcx <= 0x7FFF_FFFF_FFFF
            && e.instructionBefore == [0x0F, 0x05]
            && e.fmask & interruptFlag != 0 && e.r11 & interruptFlag != 0 && e.frameRFLAGS & interruptFlag == 0
            && e.frameRFLAGS & flagsCompared == e.r11 & ~e.fmask & flagsCompared
    }

    /// At a #PF/#GP gate hit whose frame says rip = LSTAR from CPL3: if a real `syscall` left it,
    /// enters the kernel at LSTAR at CPL0 as the CPU would (CS 0x10 / SS 0x18, RSP and RFLAGS from
    /// the frame) and returns true. Returns false to let the guest take the fault.
    mutating func complete(vcpu: VirtualCPU, regs: inout kvm_regs, sregs: inout kvm_sregs, frameRIP: UInt64, frameCS: UInt64,
                           frameRFLAGS: UInt64, frameRSP: UInt64, lstar: UInt64, memory: GuestMemory) throws(KVMError) -> Bool {
        if fmask == 0 { fmask = try vcpu.msr(Self.msrFMASK) }
        let space = AddressSpace(memory: memory, cr3: sregs.cr3, cr4: sregs.cr4)
        let before = regs.rcx &- 2
        var bytes: [UInt8]?
        if (try? space.checkUserAccess(before, count: 2, .fetch, noExecute: sregs.efer & (1 << 11) != 0)) != nil {
            bytes = try? space.read(GuestVirtualAddress(before), count: 2)
        }
        let evidence = Evidence(frameRIP: frameRIP, frameCS: frameCS, frameRFLAGS: frameRFLAGS, rcx: regs.rcx, r11: regs.r11,
                                lstar: lstar, fmask: fmask, instructionBefore: bytes)
        guard Self.isRealSystemCall(evidence) else { return false }
        sregs.cs = X86Segments.code64(selector: X86Segments.kernelCode, dpl: 0)
        sregs.ss = X86Segments.data(selector: X86Segments.kernelData, dpl: 0)
        try vcpu.setSpecialRegisters(sregs)
        regs.rip = lstar
        regs.rsp = frameRSP
        regs.rflags = frameRFLAGS
        try vcpu.setRegisters(regs)
        return true
    }
}
