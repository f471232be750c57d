import Boot
import CKVM
import KVM

/// Initial register state: the boot vCPU enters the kernel in 64-bit mode; application
/// processors wait for INIT/SIPI in the in-kernel local APIC.
enum VCPUSetup {
    static let msrAPICBase: UInt32 = 0x1B

    static func configure(_ vcpu: VirtualCPU, cpuid: [CPUIDEntry]) throws(KVMError) {
        // The architectural reset value: xAPIC enabled at 0xFEE00000, BSP flag on vCPU 0. Some
        // hosts (kvm_pvm) leave it 0, and the guest then sees no local APIC in CPUID.
        try vcpu.setMSR(Self.msrAPICBase, 0xFEE0_0000 | 0x800 | (vcpu.id == 0 ? 0x100 : 0))
        try vcpu.setCPUID(cpuid)
        // Fast strings on; MTRRs enabled with write-back default. Not every host accepts these.
        try? vcpu.setMSR(0x1A0, 1)
        try? vcpu.setMSR(0x2FF, (1 << 11) | 6)
        var lapic = try vcpu.localAPIC()
        // SAFETY: lapic.regs is the 1 KiB APIC page; offsets 0x350 and 0x360 (LINT0/LINT1) + 4 lie inside it.
        withUnsafeMutableBytes(of: &lapic.regs) { raw in
            func update(_ offset: Int, mode: UInt32) {
                let v = raw.load(fromByteOffset: offset, as: UInt32.self)
                raw.storeBytes(of: (v & ~0x700) | (mode << 8), toByteOffset: offset, as: UInt32.self)
            }
            update(0x350, mode: 7)  // LINT0: ExtINT (the 8259 PIC)
            update(0x360, mode: 4)  // LINT1: NMI
        }
        try vcpu.setLocalAPIC(lapic)
    }

    static func enterKernel(_ vcpu: VirtualCPU, entry: UInt64, bootParams: UInt64) throws(KVMError) {
        var sregs = try vcpu.specialRegisters()
        let code = X86Segments.code64(selector: EarlyPageTables.codeSelector, dpl: 0)
        let data = X86Segments.data(selector: EarlyPageTables.dataSelector, dpl: 0)
        sregs.cs = code
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        sregs.gdt.base = BootLayout.gdt.rawValue
        sregs.gdt.limit = UInt16(EarlyPageTables.gdtEntries.count * 8 - 1)
        sregs.idt.base = 0
        sregs.idt.limit = 0
        sregs.cr3 = BootLayout.pml4.rawValue
        sregs.cr4 = 0x20                      // PAE
        sregs.cr0 = 0x8005_0033               // PG | AM | WP | NE | ET | MP | PE
        sregs.efer = 0x500                    // LME | LMA
        try vcpu.setSpecialRegisters(sregs)
        var regs = kvm_regs()
        regs.rip = entry
        regs.rsi = bootParams
        regs.rsp = BootLayout.bootStack.rawValue
        regs.rbp = regs.rsp
        regs.rflags = 0x2
        try vcpu.setRegisters(regs)
    }
}
