import CKVM
import KVM

/// Everything KVM holds for a VM and its vCPUs: the in-kernel interrupt controllers, the PIT,
/// kvmclock and every vCPU. Guest RAM, devices emulated in user space and the monitor's own
/// state are not part of it.
public struct VMState: Sendable, Equatable {
    /// KVM_GET_IRQCHIP for the master 8259, the slave 8259 and the I/O APIC; nil without an
    /// in-kernel irqchip.
    public var picMaster: RawKVMStruct<kvm_irqchip>?
    public var picSlave: RawKVMStruct<kvm_irqchip>?
    public var ioapic: RawKVMStruct<kvm_irqchip>?
    /// KVM_GET_PIT2; nil without an in-kernel PIT.
    public var pit: RawKVMStruct<kvm_pit_state2>?
    /// kvmclock in nanoseconds (KVM_GET_CLOCK).
    public var clockNanoseconds: UInt64?
    public var vcpus: [VCPUState]

    public init(picMaster: RawKVMStruct<kvm_irqchip>? = nil, picSlave: RawKVMStruct<kvm_irqchip>? = nil,
                ioapic: RawKVMStruct<kvm_irqchip>? = nil, pit: RawKVMStruct<kvm_pit_state2>? = nil,
                clockNanoseconds: UInt64? = nil, vcpus: [VCPUState]) {
        self.picMaster = picMaster; self.picSlave = picSlave; self.ioapic = ioapic
        self.pit = pit; self.clockNanoseconds = clockNanoseconds; self.vcpus = vcpus
    }
}
