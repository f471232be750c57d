import CKVM
import KVM

/// Everything KVM holds for one vCPU, as captured by `VCPUState.capture` and put back by
/// `restore`. Optional parts are nil when the host refused them at capture (see
/// `StateRefusal`) or when the VM has no in-kernel irqchip (local APIC).
public struct VCPUState: Sendable, Equatable {
    /// The vCPU id given to KVM_CREATE_VCPU.
    public var id: UInt32
    /// KVM_GET_CPUID2: restored first, since KVM checks EFER.LME and XSAVE against it.
    public var cpuid: [CPUIDEntry]
    public var registers: RawKVMStruct<kvm_regs>
    public var specialRegisters: RawKVMStruct<kvm_sregs>
    /// Every MSR of KVM_GET_MSR_INDEX_LIST that this vCPU read back (the TSC, 0x10, included).
    public var msrs: [MSREntry]
    public var floatingPoint: FloatingPointState?
    public var extendedControlRegisters: RawKVMStruct<kvm_xcrs>?
    public var localAPIC: RawKVMStruct<kvm_lapic_state>?
    public var events: RawKVMStruct<kvm_vcpu_events>?
    public var debugRegisters: RawKVMStruct<kvm_debugregs>?
    /// KVM_MP_STATE_* (runnable, halted, INIT received, ...).
    public var mpState: UInt32?
    /// The guest TSC frequency (KVM_GET_TSC_KHZ).
    public var tscKHz: UInt32?

    public init(id: UInt32, cpuid: [CPUIDEntry], registers: RawKVMStruct<kvm_regs>,
                specialRegisters: RawKVMStruct<kvm_sregs>, msrs: [MSREntry] = [],
                floatingPoint: FloatingPointState? = nil, extendedControlRegisters: RawKVMStruct<kvm_xcrs>? = nil,
                localAPIC: RawKVMStruct<kvm_lapic_state>? = nil, events: RawKVMStruct<kvm_vcpu_events>? = nil,
                debugRegisters: RawKVMStruct<kvm_debugregs>? = nil, mpState: UInt32? = nil, tscKHz: UInt32? = nil) {
        self.id = id; self.cpuid = cpuid; self.registers = registers; self.specialRegisters = specialRegisters
        self.msrs = msrs; self.floatingPoint = floatingPoint; self.extendedControlRegisters = extendedControlRegisters
        self.localAPIC = localAPIC; self.events = events; self.debugRegisters = debugRegisters
        self.mpState = mpState; self.tscKHz = tscKHz
    }
}

/// The x87/SSE/AVX state: the XSAVE area when the host has KVM_CAP_XSAVE, else the legacy
/// FXSAVE-like kvm_fpu.
public enum FloatingPointState: Sendable, Equatable {
    /// KVM_GET_XSAVE (4096 bytes) or KVM_GET_XSAVE2 (the host's XSAVE2 size).
    case xsave([UInt8])
    case fpu(RawKVMStruct<kvm_fpu>)
}
