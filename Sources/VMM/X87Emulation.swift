import CKVM
import KVM

/// Emulates the x87 control instructions the guest kernel executes but the CPL0 emulator of some
/// hosts cannot: `fwait` and `fnclex`. Everything else is left to the caller's error report.
enum X87Emulation {
    /// Returns true when the instruction at RIP was emulated and RIP advanced.
    static func emulate(_ bytes: [UInt8], regs: inout kvm_regs, vcpu: VirtualCPU) throws(KVMError) -> Bool {
        guard let first = bytes.first else { return false }
        if first == 0x9B, bytes.count < 3 || !(bytes[1] == 0xDB && bytes[2] == 0xE2) {
            // fwait: raise #MF if an unmasked x87 exception is pending, otherwise nothing.
            let fpu = try vcpu.fpu()
            let pending = (fpu.fsw & 0x3F) & ~(fpu.fcw & 0x3F)
            if pending != 0 {
                try vcpu.injectException(vector: 16)
                return true
            }
            regs.rip &+= 1
            try vcpu.setRegisters(regs)
            return true
        }
        let clearLength: Int
        if bytes.starts(with: [0xDB, 0xE2]) { clearLength = 2 }                 // fnclex
        else if bytes.starts(with: [0x9B, 0xDB, 0xE2]) { clearLength = 3 }      // fclex
        else { return false }
        var fpu = try vcpu.fpu()
        fpu.fsw &= ~0x80FF                                                       // exception flags, ES, B
        try vcpu.setFPU(fpu)
        regs.rip &+= UInt64(clearLength)
        try vcpu.setRegisters(regs)
        return true
    }
}
