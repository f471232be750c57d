import CKVM
import Glibc
import KVM

extension VMState {
    /// Reads the state of a paused VM: every vCPU must be outside KVM_RUN. Irqchip and PIT are
    /// nil when the VM has none (KVM answers ENXIO); the local APICs are read only when the
    /// irqchip is there (a split irqchip is not supported).
    public static func capture(vm: VirtualMachine, vcpus: [VirtualCPU], host: HostStateFacts) throws(KVMStateError)
        -> (state: VMState, refusals: [StateRefusal]) {
        var refusals: [StateRefusal] = []
        func chip(_ id: IRQChipID) throws(KVMStateError) -> RawKVMStruct<kvm_irqchip>? {
            try attempt(.irqChip(id), vcpu: nil, &refusals) { () throws(KVMError) in RawKVMStruct(try vm.irqChip(id)) }
        }
        let master = try chip(.picMaster)
        let slave = try chip(.picSlave)
        let ioapic = try chip(.ioapic)
        let pit = try attempt(.pit, vcpu: nil, &refusals) { () throws(KVMError) in RawKVMStruct(try vm.pitState()) }
        var states: [VCPUState] = []
        for vcpu in vcpus {
            let (state, refused) = try VCPUState.capture(vcpu, host: host, inKernelLAPIC: master != nil)
            states.append(state)
            refusals += refused
        }
        let clock = try attempt(.clock, vcpu: nil, &refusals) { () throws(KVMError) in try vm.clock().clock }
        let state = VMState(picMaster: master, picSlave: slave, ioapic: ioapic, pit: pit,
                            clockNanoseconds: clock, vcpus: states)
        return (state, refusals)
    }

    /// Puts the state into a new VM created like the captured one (KVM_CREATE_IRQCHIP and
    /// KVM_CREATE_PIT2 if it had them, the same vCPU ids in the same order, RAM restored
    /// separately). Interrupt controllers and PIT first, then the vCPUs, the clock last.
    public func restore(vm: VirtualMachine, vcpus: [VirtualCPU], host: HostStateFacts) throws(KVMStateError)
        -> [StateRefusal] {
        guard vcpus.map({ UInt32(truncatingIfNeeded: $0.id) }) == self.vcpus.map(\.id) else {
            throw .vcpuMismatch(expected: self.vcpus.map(\.id), given: vcpus.map(\.id))
        }
        var refusals: [StateRefusal] = []
        for (part, chip) in [(IRQChipID.picMaster, picMaster), (.picSlave, picSlave), (.ioapic, ioapic)] {
            guard let chip else { continue }
            try device(.irqChip(part), &refusals) { () throws(KVMError) in try vm.setIRQChip(chip.value) }
        }
        if let pit {
            try device(.pit, &refusals) { () throws(KVMError) in try vm.setPITState(pit.value) }
        }
        for (vcpu, state) in zip(vcpus, self.vcpus) {
            refusals += try state.restore(into: vcpu, host: host)
        }
        if let clockNanoseconds {
            _ = try attempt(.clock, vcpu: nil, &refusals) { () throws(KVMError) in
                try vm.setClock(nanoseconds: clockNanoseconds)
            }
        }
        return refusals
    }

    private func device(_ part: StatePart, _ refusals: inout [StateRefusal],
                        _ body: () throws(KVMError) -> Void) throws(KVMStateError) {
        do { try body() } catch {
            if error.errno == ENXIO { throw .missingDevice(part) }
            if error.isRefusalByHost {
                refusals.append(StateRefusal(part: part, vcpu: nil, error: error))
                return
            }
            throw .kvm(part, error)
        }
    }
}
