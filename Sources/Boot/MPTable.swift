import GuestMemory

/// An Intel MultiProcessor Specification 1.4 table: how a kernel without ACPI finds the
/// vCPUs' local APICs and the I/O APIC. Placed at the start of the EBDA (scanned by Linux).
public enum MPTable {
    public static let localAPICAddress: UInt32 = 0xFEE0_0000
    public static let ioAPICAddress: UInt32 = 0xFEC0_0000
    static let legacyIRQs = 16

    public static func bytes(cpuCount: Int, at base: GuestPhysicalAddress = BootLayout.mpTable) -> [UInt8] {
        let ioAPICID = UInt8(cpuCount)
        var entries: [UInt8] = []
        var entryCount: UInt16 = 0
        for cpu in 0..<cpuCount {
            var e = [UInt8](repeating: 0, count: 20)
            e[0] = 0; e[1] = UInt8(cpu); e[2] = 0x14
            e[3] = cpu == 0 ? 0x3 : 0x1                    // enabled, BSP
            e.put(UInt32(0x600), at: 4)                     // family 6
            e.put(UInt32(0x201), at: 8)                     // FPU | APIC
            entries += e; entryCount += 1
        }
        entries += [1, 0] + Array("ISA   ".utf8); entryCount += 1
        var ioapic = [UInt8](repeating: 0, count: 8)
        ioapic[0] = 2; ioapic[1] = ioAPICID; ioapic[2] = 0x11; ioapic[3] = 1
        ioapic.put(ioAPICAddress, at: 4)
        entries += ioapic; entryCount += 1
        for irq in 0..<legacyIRQs {
            entries += [3, 0, 0, 0, 0, UInt8(irq), ioAPICID, UInt8(irq)]; entryCount += 1
        }
        entries += [4, 3, 0, 0, 0, 0, 0x00, 0]; entryCount += 1   // ExtINT -> LINT0 of CPU 0
        entries += [4, 1, 0, 0, 0, 0, 0xFF, 1]; entryCount += 1   // NMI -> LINT1 of all CPUs

        var header = [UInt8](repeating: 0, count: 44)
        header.replaceSubrange(0..<4, with: Array("PCMP".utf8))
        header.put(UInt16(44 + entries.count), at: 4)
        header[6] = 4
        header.replaceSubrange(8..<16, with: Array("LEAKVSR ".utf8))
        header.replaceSubrange(16..<28, with: Array("LEAKVISOR   ".utf8))
        header.put(entryCount, at: 34)
        header.put(localAPICAddress, at: 36)
        var table = header + entries
        table[7] = checksum(table)

        var pointer = [UInt8](repeating: 0, count: 16)
        pointer.replaceSubrange(0..<4, with: Array("_MP_".utf8))
        pointer.put(UInt32(truncatingIfNeeded: base.rawValue + 16), at: 4)
        pointer[8] = 1; pointer[9] = 4
        pointer[10] = checksum(pointer)
        return pointer + table
    }

    static func checksum(_ bytes: [UInt8]) -> UInt8 {
        0 &- bytes.reduce(UInt8(0), &+)
    }
}
