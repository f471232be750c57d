import CKVM

/// A KVM virtual machine file descriptor: memory slots, in-kernel irqchip and PIT, IRQ lines, vCPUs.
// SAFETY: @unchecked Sendable: immutable fd and size; KVM serialises VM ioctls itself.
public final class VirtualMachine: @unchecked Sendable {
    let fd: Int32
    let runSize: Int

    init(fd: Int32, runSize: Int) {
        self.fd = fd
        self.runSize = runSize
    }

    deinit { _ = ckvm_close(fd) }

    /// Maps host memory at `hostAddress` as guest-physical [guestAddress, guestAddress+size) in `slot`.
    public func setUserMemoryRegion(slot: UInt32, guestAddress: UInt64, size: UInt64,
                                    hostAddress: UnsafeMutableRawPointer, logDirtyPages: Bool = false) throws(KVMError) {
        // SAFETY: the caller's mapping of `size` bytes at `hostAddress` must outlive the VM (GuestRAMRegion lives as long as the machine).
        var region = kvm_userspace_memory_region(
            slot: slot, flags: logDirtyPages ? CKVM_MEM_LOG_DIRTY_PAGES : 0,
            guest_phys_addr: guestAddress, memory_size: size,
            userspace_addr: UInt64(UInt(bitPattern: hostAddress)))
        _ = try checked("KVM_SET_USER_MEMORY_REGION", ckvm_ioctl_ptr(fd, CKVM_SET_USER_MEMORY_REGION, &region))
    }

    /// Returns the dirty bitmap of `slot` (one bit per 4 KiB page) and clears it in KVM.
    public func dirtyLog(slot: UInt32, pageCount: Int) throws(KVMError) -> [UInt64] {
        var bitmap = [UInt64](repeating: 0, count: (pageCount + 63) / 64)
        // SAFETY: the bitmap has one bit per page of the slot (rounded up to 64), what KVM_GET_DIRTY_LOG writes; the pointer is used only during the ioctl.
        let rc = bitmap.withUnsafeMutableBytes { buf in
            var log = kvm_dirty_log()
            log.slot = slot
            log.dirty_bitmap = buf.baseAddress
            return ckvm_ioctl_ptr(fd, CKVM_GET_DIRTY_LOG, &log)
        }
        _ = try checked("KVM_GET_DIRTY_LOG", rc)
        return bitmap
    }

    public func setTSSAddress(_ address: UInt64) throws(KVMError) {
        _ = try checked("KVM_SET_TSS_ADDR", ckvm_ioctl_val(fd, CKVM_SET_TSS_ADDR, UInt(address)))
    }

    public func setIdentityMapAddress(_ address: UInt64) throws(KVMError) {
        var a = address
        _ = try checked("KVM_SET_IDENTITY_MAP_ADDR", ckvm_ioctl_ptr(fd, CKVM_SET_IDENTITY_MAP_ADDR, &a))
    }

    /// In-kernel PIC, IOAPIC and local APICs.
    public func createIRQChip() throws(KVMError) {
        _ = try checked("KVM_CREATE_IRQCHIP", ckvm_ioctl_val(fd, CKVM_CREATE_IRQCHIP, 0))
    }

    /// In-kernel i8254 PIT (ports 0x40-0x43 and the speaker port 0x61).
    public func createPIT() throws(KVMError) {
        var config = kvm_pit_config()
        _ = try checked("KVM_CREATE_PIT2", ckvm_ioctl_ptr(fd, CKVM_CREATE_PIT2, &config))
    }

    /// Sets the level of an interrupt line of the in-kernel PIC/IOAPIC.
    public func setIRQLine(_ irq: UInt32, high: Bool) throws(KVMError) {
        var line = kvm_irq_level()
        line.irq = irq
        line.level = high ? 1 : 0
        _ = try checked("KVM_IRQ_LINE", ckvm_ioctl_ptr(fd, CKVM_IRQ_LINE, &line))
    }

    public func createVCPU(id: Int) throws(KVMError) -> VirtualCPU {
        let vcpufd = try checked("KVM_CREATE_VCPU", ckvm_ioctl_val(fd, CKVM_CREATE_VCPU, UInt(id)))
        // SAFETY: runSize is KVM_GET_VCPU_MMAP_SIZE, so the mapping holds a kvm_run and the io/mmio data pages KVM points into; VirtualCPU unmaps it in deinit.
        guard let run = ckvm_mmap_shared(vcpufd, runSize) else {
            _ = ckvm_close(vcpufd)
            throw .mmap(what: "kvm_run of vCPU \(id)", errno: 0)
        }
        return VirtualCPU(id: id, fd: vcpufd, run: run.assumingMemoryBound(to: kvm_run.self), runSize: runSize)
    }
}
