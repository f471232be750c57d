import CKVM
import GuestInterface
import KVM
import X86

extension VCPUSnapshot {
    /// Reads a parked vCPU's registers (its vector registers too, roots for a reachability scan)
    /// and the MSRs introspection needs.
    static func capture(_ vcpu: VirtualCPU) throws(KVMError) -> VCPUSnapshot {
        let sregs = try vcpu.specialRegisters()
        let vector = (try? vcpu.xsave(size: nil)).map(XSAVEArea.vectorRegisterWords) ?? []
        return try capture(vcpu, registers: GeneralRegisters(try vcpu.registers()), sregs: sregs,
                           privilegeLevel: Int(sregs.cs.dpl), vectorRegisters: vector)
    }

    /// A snapshot from registers already read (and possibly adjusted, e.g. to the user state an
    /// exception frame records), with the MSRs introspection needs. `systemCallEntry` saves the
    /// LSTAR read when the caller knows it.
    static func capture(_ vcpu: VirtualCPU, registers: GeneralRegisters, sregs: kvm_sregs, privilegeLevel: Int,
                        systemCallEntry: UInt64 = 0, vectorRegisters: [UInt64] = []) throws(KVMError) -> VCPUSnapshot {
        VCPUSnapshot(index: vcpu.id, registers: registers, cr3: sregs.cr3, cr4: sregs.cr4, efer: sregs.efer,
                     privilegeLevel: privilegeLevel,
                     systemCallEntry: systemCallEntry != 0 ? systemCallEntry : try vcpu.msr(VCPUAssistant.msrLSTAR),
                     gsBase: sregs.gs.base, kernelGSBase: try vcpu.msr(VCPUAssistant.msrKernelGSBase),
                     fsBase: sregs.fs.base, vectorRegisters: vectorRegisters)
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
