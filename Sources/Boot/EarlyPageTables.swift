import GuestMemory

/// Identity-mapped page tables (first 4 GiB, 2 MiB pages) and the flat GDT the 64-bit boot protocol needs.
public enum EarlyPageTables {
    /// GDT selectors the kernel expects at entry (__BOOT_CS, __BOOT_DS).
    public static let codeSelector: UInt16 = 0x10
    public static let dataSelector: UInt16 = 0x18
    public static let gdtEntries: [UInt64] = [0, 0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF]

    public static func write(into memory: GuestMemory) throws(BootError) {
        do {
            try memory.fill(0, at: BootLayout.pml4, count: 4096 * 6)
            try memory.store(BootLayout.pdpt.rawValue | 0x3, at: BootLayout.pml4)
            for gib in 0..<4 {
                let pd = BootLayout.pageDirectories.rawValue + UInt64(gib) * 4096
                try memory.store(pd | 0x3, at: GuestPhysicalAddress(BootLayout.pdpt.rawValue + UInt64(gib) * 8))
                for i in 0..<512 {
                    let physical = (UInt64(gib) << 30) | (UInt64(i) << 21)
                    try memory.store(physical | 0x83, at: GuestPhysicalAddress(pd + UInt64(i) * 8))  // P|RW|PS
                }
            }
            for (i, e) in gdtEntries.enumerated() {
                try memory.store(e, at: GuestPhysicalAddress(BootLayout.gdt.rawValue + UInt64(i) * 8))
            }
        } catch { throw .memory(error) }
    }
}
