import GuestMemory

/// Minimal ACPI 6 tables: RSDP → XSDT → FADT (→ DSDT describing the virtio-mmio devices) and a MADT
/// listing one local APIC per vCPU, the I/O APIC and level-triggered overrides for the SCI and the
/// virtio interrupts. Not hardware-reduced: a hardware-reduced platform has
/// no 8259 PIC, and Linux then maps no ISA IRQs (the serial port's IRQ 4 among them). This is how a kernel without MP-table
/// support (Debian's) finds its CPUs and puts the local APIC (and its TSC-deadline timer) to use.
public enum ACPITables {
    /// Where the tables go: the BIOS area that Linux scans for the RSDP (also passed in boot_params).
    public static let base = GuestPhysicalAddress(0xE_0000)
    static let xsdtOffset: UInt64 = 0x40
    static let fadtOffset: UInt64 = 0x100
    static let dsdtOffset: UInt64 = 0x300
    static let madtOffset: UInt64 = 0x1000
    /// Room for the DSDT, up to the MADT.
    static let dsdtCapacity = Int(madtOffset - dsdtOffset)
    public static let localAPICAddress: UInt32 = 0xFEE0_0000
    public static let ioAPICAddress: UInt32 = 0xFEC0_0000
    static let oemID = Array("LKVSR ".utf8)
    static let oemTableID = Array("LEAKVISR".utf8)

    /// The most virtio-mmio devices whose DSDT entries fit in `dsdtCapacity`.
    public static let maximumVirtioDevices = 32

    /// The tables as one blob to be written at `base` (RSDP first).
    public static func blob(cpuCount: Int, virtioDevices: [VirtioMMIODeviceDescription] = []) -> [UInt8] {
        precondition(virtioDevices.count <= maximumVirtioDevices, "too many virtio devices for the DSDT")
        let b = base.rawValue
        let madt = MADT(cpuCount: cpuCount, levelIRQs: virtioDevices.map(\.gsi))
        let fadt = FADT(dsdt: b + dsdtOffset)
        let dsdt = DSDT(virtioDevices: virtioDevices)
        precondition(dsdt.count <= dsdtCapacity, "DSDT overflows its space")
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

    /// The SCI's ISA IRQ (never raised: no ACPI events).
    public static let sciIRQ: UInt8 = 9

    /// FADT revision 6: PM1a event/control blocks at the given I/O ports, SCI on IRQ 9, no PM
    /// timer, already in ACPI mode (SMI_CMD 0).
    static func FADT(dsdt: UInt64, pm1EventBlock: UInt16 = 0x600, pm1EventLength: UInt8 = 4,
                     pm1ControlBlock: UInt16 = 0x604, pm1ControlLength: UInt8 = 2) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: 276 - 36)
        func put<T: FixedWidthInteger>(_ v: T, _ offset: Int) { body.put(v, at: offset - 36) }
        func gas(_ port: UInt16, bits: UInt8, _ offset: Int) {   // Generic Address Structure, system I/O
            put(UInt8(1), offset); put(bits, offset + 1); put(UInt8(0), offset + 2)
            put(UInt8(bits == 32 ? 3 : 2), offset + 3); put(UInt64(port), offset + 4)
        }
        put(UInt32(truncatingIfNeeded: dsdt), 40)
        put(UInt16(sciIRQ), 46)                     // SCI_INT
        put(UInt32(pm1EventBlock), 56)              // PM1a_EVT_BLK
        put(UInt32(pm1ControlBlock), 64)            // PM1a_CNT_BLK
        put(pm1EventLength, 88)
        put(pm1ControlLength, 89)
        put(UInt16(1 << 1 | 1 << 2), 109)           // IAPC_BOOT_ARCH: 8042 present, no VGA
        put(UInt32(1 << 0 | 1 << 4), 112)           // WBINVD, PWR_BUTTON (none: control method)
        put(dsdt, 140)                              // X_DSDT
        gas(pm1EventBlock, bits: pm1EventLength * 8, 148)
        gas(pm1ControlBlock, bits: pm1ControlLength * 8, 172)
        return table(signature: "FACP", revision: 6, body: body)
    }

    /// Scope(\_SB) { Device(VRnn) {...} ... }, or an empty DSDT when there are no devices.
    static func DSDT(virtioDevices: [VirtioMMIODeviceDescription]) -> [UInt8] {
        let devices = virtioDevices.enumerated().flatMap { $0.element.aml(index: $0.offset) }
        return table(signature: "DSDT", revision: 2, body: devices.isEmpty ? [] : AML.scope("\\_SB", devices))
    }

    /// `levelIRQs`: ISA IRQs (other than the SCI) to override as level-triggered, active high.
    static func MADT(cpuCount: Int, levelIRQs: [UInt32] = []) -> [UInt8] {
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
        var seen: Set<UInt32> = []
        for irq in [UInt32(sciIRQ)] + levelIRQs where seen.insert(irq).inserted {
            var iso = [UInt8](repeating: 0, count: 10)  // Interrupt Source Override: level, active high
            iso[0] = 2; iso[1] = 10; iso[2] = 0; iso[3] = UInt8(truncatingIfNeeded: irq)
            iso.put(irq, at: 4)
            iso.put(UInt16(0x000D), at: 8)
            body += iso
        }
        return table(signature: "APIC", revision: 5, body: body)
    }
}
