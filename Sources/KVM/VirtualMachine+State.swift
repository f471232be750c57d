import CKVM

/// Which in-kernel interrupt controller KVM_GET/SET_IRQCHIP addresses.
public enum IRQChipID: UInt32, Sendable, CaseIterable {
    case picMaster = 0, picSlave = 1, ioapic = 2
}

/// The per-VM state ioctls a snapshot needs: in-kernel PIC/IOAPIC, PIT and kvmclock.
extension VirtualMachine {
    /// KVM_GET_IRQCHIP for one chip (needs KVM_CREATE_IRQCHIP first).
    public func irqChip(_ id: IRQChipID) throws(KVMError) -> kvm_irqchip {
        var chip = kvm_irqchip()
        chip.chip_id = id.rawValue
        _ = try checked("KVM_GET_IRQCHIP(\(id))", ckvm_ioctl_ptr(fd, CKVM_GET_IRQCHIP, &chip))
        return chip
    }

    /// KVM_SET_IRQCHIP; the chip is named by `state.chip_id`.
    public func setIRQChip(_ state: kvm_irqchip) throws(KVMError) {
        var chip = state
        _ = try checked("KVM_SET_IRQCHIP(\(chip.chip_id))", ckvm_ioctl_ptr(fd, CKVM_SET_IRQCHIP, &chip))
    }

    /// KVM_GET_PIT2 (needs KVM_CREATE_PIT2 first).
    public func pitState() throws(KVMError) -> kvm_pit_state2 {
        var pit = kvm_pit_state2()
        _ = try checked("KVM_GET_PIT2", ckvm_ioctl_ptr(fd, CKVM_GET_PIT2, &pit))
        return pit
    }

    public func setPITState(_ state: kvm_pit_state2) throws(KVMError) {
        var pit = state
        _ = try checked("KVM_SET_PIT2", ckvm_ioctl_ptr(fd, CKVM_SET_PIT2, &pit))
    }

    /// KVM_GET_CLOCK: the kvmclock value (ns) the VM's guests see, with flags.
    public func clock() throws(KVMError) -> kvm_clock_data {
        var c = kvm_clock_data()
        _ = try checked("KVM_GET_CLOCK", ckvm_ioctl_ptr(fd, CKVM_GET_CLOCK, &c))
        return c
    }

    /// KVM_SET_CLOCK to `nanoseconds`, with no flags (portable to every host with ADJUST_CLOCK).
    public func setClock(nanoseconds: UInt64) throws(KVMError) {
        var c = kvm_clock_data()
        c.clock = nanoseconds
        _ = try checked("KVM_SET_CLOCK", ckvm_ioctl_ptr(fd, CKVM_SET_CLOCK, &c))
    }
}
