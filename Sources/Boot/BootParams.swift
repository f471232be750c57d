import GuestMemory

/// Builds the Linux "zero page" (struct boot_params) for the 64-bit boot protocol.
public struct BootParams: Sendable {
    public private(set) var bytes = [UInt8](repeating: 0, count: 4096)

    public init(kernel: LoadedKernel) {
        if let header = kernel.setupHeader {
            for (i, b) in header.prefix(4096 - 0x1F1).enumerated() { bytes[0x1F1 + i] = b }
        } else {
            bytes.put(UInt16(0xAA55), at: 0x1FE)          // boot_flag
            bytes.put(UInt32(0x5372_6448), at: 0x202)     // "HdrS"
            bytes.put(UInt16(0x020F), at: 0x206)          // protocol 2.15
            bytes.put(UInt32(0x0100_0000), at: 0x230)     // kernel_alignment
            bytes.put(UInt32(kernel.initrdAddressMax), at: 0x22C)
            bytes.put(UInt32(kernel.commandLineMaximum), at: 0x238)
        }
        bytes[0x210] = 0xFF                                // type_of_loader: undefined
        bytes[0x211] |= 0x01 | 0x80                        // LOADED_HIGH | CAN_USE_HEAP
        bytes.put(UInt16(0xFE00), at: 0x224)               // heap_end_ptr
    }

    public mutating func setCommandLine(at address: GuestPhysicalAddress) {
        bytes.put(UInt32(truncatingIfNeeded: address.rawValue), at: 0x228)
        bytes.put(UInt32(truncatingIfNeeded: address.rawValue >> 32), at: 0x0C8)
    }

    public mutating func setInitrd(at address: GuestPhysicalAddress, size: UInt64) {
        bytes.put(UInt32(truncatingIfNeeded: address.rawValue), at: 0x218)
        bytes.put(UInt32(truncatingIfNeeded: size), at: 0x21C)
        bytes.put(UInt32(truncatingIfNeeded: address.rawValue >> 32), at: 0x0C0)
        bytes.put(UInt32(truncatingIfNeeded: size >> 32), at: 0x0C4)
    }

    /// boot_params.acpi_rsdp_addr (boot protocol 2.14+).
    public mutating func setACPIRoot(at address: GuestPhysicalAddress) {
        bytes.put(address.rawValue, at: 0x070)
    }

    public mutating func setMemoryMap(_ map: E820Map) {
        let entries = map.entries.prefix(128)
        bytes[0x1E8] = UInt8(entries.count)
        for (i, e) in entries.enumerated() {
            let at = 0x2D0 + i * 20
            bytes.put(e.start, at: at)
            bytes.put(e.size, at: at + 8)
            bytes.put(e.kind.rawValue, at: at + 16)
        }
    }
}
