/// A vCPU's state captured while it is parked: what introspection needs to read the guest as
/// that CPU sees it (page-table root, privilege level, the kernel's per-CPU base, entry point).
public struct VCPUSnapshot: Sendable {
    public let index: Int
    public let registers: GeneralRegisters
    public let cr3: UInt64
    public let cr4: UInt64
    public let efer: UInt64
    /// Current privilege level (CS.DPL): 0 kernel, 3 user.
    public let privilegeLevel: Int
    /// IA32_LSTAR: the kernel's 64-bit system-call entry (`entry_SYSCALL_64`).
    public let systemCallEntry: UInt64
    /// GS base now, and the swapped-out one (IA32_KERNEL_GS_BASE): one of them is the kernel's per-CPU base.
    public let gsBase: UInt64
    public let kernelGSBase: UInt64
    /// FS base: the thread pointer of the user thread this vCPU runs (the kernel leaves it alone).
    public let fsBase: UInt64
    /// The words of xmm0–15 and the ymm upper halves in use (`XSAVEArea`), when they were read
    /// (at a pause); empty otherwise.
    public let vectorRegisters: [UInt64]

    /// The kernel's per-CPU base for this vCPU: GS in kernel mode, the swapped value in user mode.
    public var perCPUBase: UInt64 { privilegeLevel == 0 ? gsBase : kernelGSBase }

    public init(index: Int, registers: GeneralRegisters, cr3: UInt64, cr4: UInt64, efer: UInt64, privilegeLevel: Int,
                systemCallEntry: UInt64, gsBase: UInt64, kernelGSBase: UInt64, fsBase: UInt64 = 0,
                vectorRegisters: [UInt64] = []) {
        self.index = index; self.registers = registers; self.cr3 = cr3; self.cr4 = cr4; self.efer = efer
        self.privilegeLevel = privilegeLevel; self.systemCallEntry = systemCallEntry
        self.gsBase = gsBase; self.kernelGSBase = kernelGSBase; self.fsBase = fsBase
        self.vectorRegisters = vectorRegisters
    }
}

