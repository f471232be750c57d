import CKVM
import Introspection
import KVM

extension VCPUSnapshot {
    /// Reads a parked vCPU's registers and the MSRs introspection needs.
    static func capture(_ vcpu: VirtualCPU) throws(KVMError) -> VCPUSnapshot {
        let regs = try vcpu.registers()
        let sregs = try vcpu.specialRegisters()
        return VCPUSnapshot(index: vcpu.id, registers: GeneralRegisters(regs), cr3: sregs.cr3, cr4: sregs.cr4,
                            efer: sregs.efer, privilegeLevel: Int(sregs.cs.dpl),
                            systemCallEntry: try vcpu.msr(0xC000_0082), gsBase: sregs.gs.base,
                            kernelGSBase: try vcpu.msr(0xC000_0102))
    }
}

extension GeneralRegisters {
    init(_ r: kvm_regs) {
        self.init()
        rax = r.rax; rbx = r.rbx; rcx = r.rcx; rdx = r.rdx; rsi = r.rsi; rdi = r.rdi; rbp = r.rbp; rsp = r.rsp
        r8 = r.r8; r9 = r.r9; r10 = r.r10; r11 = r.r11; r12 = r.r12; r13 = r.r13; r14 = r.r14; r15 = r.r15
        rip = r.rip; rflags = r.rflags
    }
}

extension kvm_regs {
    init(_ r: GeneralRegisters) {
        self.init()
        rax = r.rax; rbx = r.rbx; rcx = r.rcx; rdx = r.rdx; rsi = r.rsi; rdi = r.rdi; rbp = r.rbp; rsp = r.rsp
        r8 = r.r8; r9 = r.r9; r10 = r.r10; r11 = r.r11; r12 = r.r12; r13 = r.r13; r14 = r.r14; r15 = r.r15
        rip = r.rip; rflags = r.rflags
    }
}
