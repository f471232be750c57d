import GuestMemory

/// Minimal ACPI 6 tables for a hardware-reduced platform: RSDP → XSDT → FADT (→ empty DSDT) and a
/// MADT listing one local APIC per vCPU and the I/O APIC. This is how a kernel without MP-table
/// support (Debian's) finds its CPUs and puts the local APIC (and its TSC-deadline timer) to use.
public enum ACPITables {
    /// Where the tables go: the BIOS area that Linux scans for the RSDP (also passed in boot_params).
    public static let base = GuestPhysicalAddress(0xE_0000)
    static let xsdtOffset: UInt64 = 0x40
    static let fadtOffset: UInt64 = 0x100
    static let dsdtOffset: UInt64 = 0x300
    static let madtOffset: UInt64 = 0x400
    public static let localAPICAddress: UInt32 = 0xFEE0_0000
    public static let ioAPICAddress: UInt32 = 0xFEC0_0000
    static let oemID = Array("LKVSR ".utf8)
    static let oemTableID = Array("LEAKVISR".utf8)

    /// The tables as one blob to be written at `base` (RSDP first).
    public static func blob(cpuCount: Int) -> [UInt8] {
        let b = base.rawValue
        let madt = MADT(cpuCount: cpuCount)
        let fadt = FADT(dsdt: b + dsdtOffset)
        let dsdt = table(signature: "DSDT", revision: 2, body: [])
        let xsdt = table(signature: "XSDT", revision: 1, body: [b + fadtOffset, b + madtOffset].flatMap(littleEndian))
        var blob = [UInt8](repeating: 0, count: Int(madtOffset) + madt.count)
        blob.replaceSubrange(0..<36, with: rsdp(xsdt: b + xsdtOffset))
        for (offset, bytes) in [(xsdtOffset, xsdt), (fadtOffset, fadt), (dsdtOffset, dsdt), (madtOffset, madt)] {
            blob.replaceSubrange(Int(offset)..<Int(offset) + bytes.count, with: bytes)
        }
        return blob
    }

    static func littleEndian(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt8 { 0 &- bytes.reduce(0, &+) }

    static func rsdp(xsdt: UInt64) -> [UInt8] {
        var r = [UInt8](repeating: 0, count: 36)
        r.replaceSubrange(0..<8, with: Array("RSD PTR ".utf8))
        r.replaceSubrange(9..<15, with: oemID)
        r[15] = 2                                   // ACPI 2.0+ RSDP
        r.put(UInt32(36), at: 20)
        r.put(xsdt, at: 24)
        r[8] = checksum(r[0..<20])
        r[32] = checksum(r)
        return r
    }

    /// A system description table: 36-byte header + body, checksummed.
    static func table(signature: String, revision: UInt8, body: [UInt8]) -> [UInt8] {
        var t = [UInt8](repeating: 0, count: 36) + body
        t.replaceSubrange(0..<4, with: Array(signature.utf8))
        t.put(UInt32(t.count), at: 4)
        t[8] = revision
        t.replaceSubrange(10..<16, with: oemID)
        t.replaceSubrange(16..<24, with: oemTableID)
        t.put(UInt32(1), at: 24)                     // OEM revision
        t.replaceSubrange(28..<32, with: Array("LKVS".utf8))
        t.put(UInt32(1), at: 32)                     // creator revision
        t[9] = checksum(t)
        return t
    }

    /// FADT revision 6 with HW_REDUCED_ACPI: no PM timer, SCI or fixed hardware.
    static func FADT(dsdt: UInt64) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: 276 - 36)
        func put<T: FixedWidthInteger>(_ v: T, _ offset: Int) { body.put(v, at: offset - 36) }
        put(UInt32(truncatingIfNeeded: dsdt), 40)
        put(UInt16(1 << 1 | 1 << 2), 109)           // IAPC_BOOT_ARCH: 8042 present, no VGA
        put(UInt32(1 << 20), 112)                   // HW_REDUCED_ACPI
        put(dsdt, 140)                              // X_DSDT
        return table(signature: "FACP", revision: 6, body: body)
    }

    static func MADT(cpuCount: Int) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: 8)
        body.put(localAPICAddress, at: 0)
        body.put(UInt32(1), at: 4)                  // PCAT_COMPAT: 8259 PICs present
        for cpu in 0..<cpuCount {
            var e = [UInt8](repeating: 0, count: 8)
            e[0] = 0; e[1] = 8; e[2] = UInt8(cpu); e[3] = UInt8(cpu)
            e.put(UInt32(1), at: 4)                 // enabled
            body += e
        }
        var ioapic = [UInt8](repeating: 0, count: 12)
        ioapic[0] = 1; ioapic[1] = 12; ioapic[2] = UInt8(cpuCount)
        ioapic.put(ioAPICAddress, at: 4)
        body += ioapic                              // GSI base 0: ISA IRQ n = GSI n (KVM's default routing)
        return table(signature: "APIC", revision: 5, body: body)
    }
}
