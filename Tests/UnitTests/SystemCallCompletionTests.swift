import GuestMemory
@testable import VMM
import Testing

/// kvm_pvm's half-done `syscall` is completed only when a `syscall` instruction started it: a user
/// `jmp` to LSTAR must stay a fault (issue 11).
struct SystemCallCompletionTests {
    static let lstar: UInt64 = 0xFFFF_FFFF_8180_0040
    /// Linux's MSR_SYSCALL_MASK: TF, DF, IF, IOPL, AC, NT.
    static let fmask: UInt64 = 0x47700
    static let userFlags: UInt64 = 0x246

    /// What the gate sees after `syscall` at 0x40_1000 (rcx = the next instruction).
    func real() -> SystemCallCompletion.Evidence {
        SystemCallCompletion.Evidence(frameRIP: Self.lstar, frameCS: 0x33, frameRFLAGS: Self.userFlags & ~Self.fmask,
                                      rcx: 0x40_1002, r11: Self.userFlags, lstar: Self.lstar, fmask: Self.fmask,
                                      instructionBefore: [0x0F, 0x05])
    }

    @Test func aRealSystemCallIsCompleted() {
        #expect(SystemCallCompletion.isRealSystemCall(real()))
        var withResumeFlag = real()
        withResumeFlag.r11 |= 1 << 16
        #expect(SystemCallCompletion.isRealSystemCall(withResumeFlag))
    }

    @Test func aJumpToLSTARIsNot() {
        // A `jmp` keeps IF set (user mode cannot clear it), even with RCX/R11 chosen to look right.
        var jump = real()
        jump.frameRFLAGS = Self.userFlags
        #expect(!SystemCallCompletion.isRealSystemCall(jump))
    }

    @Test func everyPieceOfEvidenceCounts() {
        var e = real(); e.instructionBefore = [0x90, 0x05]
        #expect(!SystemCallCompletion.isRealSystemCall(e))
        e = real(); e.instructionBefore = nil                       // not executable for the user
        #expect(!SystemCallCompletion.isRealSystemCall(e))
        e = real(); e.rcx = 0xFFFF_FFFF_8100_0002                   // return address in the kernel
        #expect(!SystemCallCompletion.isRealSystemCall(e))
        e = real(); e.r11 = Self.userFlags | 0x800                 // OF in r11 but not in the frame
        #expect(!SystemCallCompletion.isRealSystemCall(e))
        e = real(); e.r11 = Self.userFlags & ~0x200                // r11 without IF: not from user mode
        e.frameRFLAGS = e.r11 & ~Self.fmask
        #expect(!SystemCallCompletion.isRealSystemCall(e))
        e = real(); e.fmask = 0x100; e.frameRFLAGS = Self.userFlags & ~0x100   // FMASK leaving IF: unprovable
        #expect(!SystemCallCompletion.isRealSystemCall(e))
        e = real(); e.frameCS = 0x10
        #expect(!SystemCallCompletion.isRealSystemCall(e))
        e = real(); e.frameRIP = Self.lstar + 1
        #expect(!SystemCallCompletion.isRealSystemCall(e))
        e = real(); e.lstar = 0; e.frameRIP = 0
        #expect(!SystemCallCompletion.isRealSystemCall(e))
    }

    @Test func gatesFollowTheHostAndTheTracker() {
        // kvm_pvm: #GP/#PF for syscall completion always; #BP only while tracking.
        #expect(VCPUAssistant.gateVectors(completesSyscalls: true, userTraps: true) == [13, 14, 3])
        #expect(VCPUAssistant.gateVectors(completesSyscalls: true, userTraps: false) == [13, 14])
        // VMX/SVM: nothing to complete; #PF (trampoline) and #BP only while tracking.
        #expect(VCPUAssistant.gateVectors(completesSyscalls: false, userTraps: true) == [14, 3])
        #expect(VCPUAssistant.gateVectors(completesSyscalls: false, userTraps: false) == [])
    }

    @Test func onlyThePVMPolicyCompletesSystemCalls() throws {
        let memory = try GuestMemory(size: 2 << 20)
        #expect(PVMHostPolicy().makeAssistant(memory: memory, trapHandlers: TrapHandlerSlot()).completesSyscalls)
        #expect(!HardwareHostPolicy().makeAssistant(memory: memory, trapHandlers: TrapHandlerSlot()).completesSyscalls)
    }
}
