import CKVM
import KVM

/// The per-vCPU piece of a host whose KVM runs guest kernel code in its instruction emulator
/// (kvm_pvm): what that emulator leaves undone, completed here. It finishes `syscall`
/// transitions left at CPL3 (`SystemCallCompletion`) and repairs two emulation failures of guest
/// CPL0 code: x87 control instructions (`X87Emulation`) and the kernel's own `int3` (re-injected
/// as #BP). Hosts with VMX/SVM run that code natively and have no such piece.
struct EmulatorFixups {
    var systemCalls = SystemCallCompletion()

    /// What `repair` did with an emulation failure.
    enum Repair {
        case x87Emulated
        case breakpointReinjected
    }

    /// Repairs an emulation failure of guest kernel code at `regs.rip` (`bytes` are the
    /// instruction's), or returns nil when it is none of the known ones.
    func repair(_ bytes: [UInt8], regs: inout kvm_regs, sregs: kvm_sregs, vcpu: VirtualCPU) throws(KVMError) -> Repair? {
        guard sregs.cs.dpl == 0 else { return nil }
        if try X87Emulation.emulate(bytes, regs: &regs, vcpu: vcpu) { return .x87Emulated }
        if let length = Self.breakpointLength(bytes) {
            // #BP is a trap: the guest's handler expects RIP after the instruction.
            regs.rip &+= length
            try vcpu.setRegisters(regs)
            try vcpu.injectException(vector: 3)
            return .breakpointReinjected
        }
        return nil
    }

    /// Length of an `int3` (cc) or `int 3` (cd 03) instruction at the start of `bytes`.
    static func breakpointLength(_ bytes: [UInt8]) -> UInt64? {
        if bytes.first == 0xCC { return 1 }
        if bytes.starts(with: [0xCD, 0x03]) { return 2 }
        return nil
    }
}
