import GuestMemory

/// Chooses where the initrd goes: as high as possible in low RAM, above the kernel, page aligned.
public enum InitrdPlacement {
    public static func address(size: UInt64, kernel: LoadedKernel, memory: GuestMemory) throws(BootError) -> GuestPhysicalAddress {
        let top = min(memory.lowEnd.rawValue, kernel.initrdAddressMax &+ 1)
        let floor = (kernel.end.rawValue + 0xFFF) & ~0xFFF
        guard top > floor, size <= top - floor else {
            throw .initrdTooLarge(size: size, available: top > floor ? top - floor : 0)
        }
        return GuestPhysicalAddress((top - size) & ~0xFFF)
    }
}
