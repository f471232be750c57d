import GuestMemory

/// A kernel placed in guest memory, ready to be entered in 64-bit mode.
public struct LoadedKernel: Sendable {
    public enum Format: String, Sendable { case elf = "ELF vmlinux", bzImage = "bzImage" }
    public let format: Format
    /// 64-bit entry point (guest-physical; identity-mapped at entry).
    public let entry: GuestPhysicalAddress
    /// First byte above everything the kernel occupies while booting (initrd must go above).
    public let end: GuestPhysicalAddress
    /// The setup header to copy into boot_params at 0x1f1 (bzImage), or nil to synthesize one (ELF).
    public let setupHeader: [UInt8]?
    /// Largest initrd end address the kernel accepts.
    public let initrdAddressMax: UInt64
    /// Largest command line length the kernel accepts (excluding the NUL).
    public let commandLineMaximum: Int
}

/// Recognizes and loads an x86-64 Linux kernel image (ELF vmlinux or bzImage).
public enum KernelImage {
    public static func load(_ bytes: [UInt8], into memory: GuestMemory) throws(BootError) -> LoadedKernel {
        if bytes.count >= 4, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 {
            return try ELFKernel.load(bytes, into: memory)
        }
        if ByteReader(bytes: bytes).integer(UInt32.self, at: 0x202) == 0x5372_6448 {  // "HdrS"
            return try BzImage.load(bytes, into: memory)
        }
        if bytes.isEmpty { throw .unrecognizedKernel("the file is empty") }
        throw .unrecognizedKernel("neither an ELF file nor a bzImage (no \"HdrS\" boot header)")
    }
}
