import GuestMemory

/// Where the monitor places boot structures in guest-physical memory (all below 1 MiB except the kernel).
public enum BootLayout {
    public static let gdt = GuestPhysicalAddress(0x500)
    public static let bootParams = GuestPhysicalAddress(0x7000)
    public static let pml4 = GuestPhysicalAddress(0x9000)
    public static let pdpt = GuestPhysicalAddress(0xA000)
    /// Four page directories mapping the first 4 GiB with 2 MiB pages.
    public static let pageDirectories = GuestPhysicalAddress(0xB000)
    public static let commandLine = GuestPhysicalAddress(0x20000)
    public static let commandLineMaximum = 4096
    public static let ebdaStart: UInt64 = 0x9FC00
    public static let highMemory: UInt64 = 0x10_0000
    /// The initial kernel stack pointer the monitor gives the entry point.
    public static let bootStack = GuestPhysicalAddress(0x8FF0)
    /// Default load address of the protected-mode kernel (LOAD_PHYSICAL_ADDR of distribution kernels).
    public static let kernelLoad = GuestPhysicalAddress(0x100_0000)
}
