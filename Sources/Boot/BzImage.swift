import GuestMemory

/// Loads a bzImage through the x86 64-bit boot protocol: the protected-mode part goes to its
/// preferred address and is entered at +0x200 (startup_64 of the decompressor).
enum BzImage {
    static func load(_ bytes: [UInt8], into memory: GuestMemory) throws(BootError) -> LoadedKernel {
        let r = ByteReader(bytes: bytes)
        guard let version = r.integer(UInt16.self, at: 0x206), version >= 0x020C else {
            throw .unrecognizedKernel("boot protocol older than 2.12 has no 64-bit entry point")
        }
        guard let xloadflags = r.integer(UInt16.self, at: 0x236), xloadflags & 1 == 1 else {
            throw .unrecognizedKernel("bzImage has no 64-bit entry point (XLF_KERNEL_64 clear)")
        }
        guard let setupSectorsByte = r.u8(0x1F1), let headerEnd = r.u8(0x201),
              let initSize = r.integer(UInt32.self, at: 0x260),
              let preferred = r.integer(UInt64.self, at: 0x258),
              let initrdMax = r.integer(UInt32.self, at: 0x22C),
              let cmdlineSize = r.integer(UInt32.self, at: 0x238)
        else { throw .corruptKernel("truncated setup header") }
        let setupSectors = setupSectorsByte == 0 ? 4 : Int(setupSectorsByte)
        let kernelOffset = (setupSectors + 1) * 512
        guard kernelOffset < bytes.count else { throw .corruptKernel("setup sectors run past the end of the file") }
        let payload = bytes[kernelOffset...]
        let load = preferred >= BootLayout.highMemory ? preferred : BootLayout.kernelLoad.rawValue
        let (end, overflow) = load.addingReportingOverflow(max(UInt64(initSize), UInt64(payload.count)))
        guard !overflow, memory.contains(GuestPhysicalAddress(load), length: Int(end - load)) else {
            throw .kernelDoesNotFit(needed: end, available: memory.lowEnd.rawValue)
        }
        do { try memory.write(payload, at: GuestPhysicalAddress(load)) } catch { throw .memory(error) }
        // Setup header: from 0x1f1 up to the end given by the jump at 0x200 (byte 0x201 + 0x202).
        let headerLength = min(0x202 + Int(headerEnd), 0x280) - 0x1F1
        guard let header = r.slice(0x1F1, headerLength) else { throw .corruptKernel("truncated setup header") }
        return LoadedKernel(format: .bzImage, entry: GuestPhysicalAddress(load + 0x200),
                            end: GuestPhysicalAddress(end), setupHeader: Array(header),
                            initrdAddressMax: UInt64(initrdMax), commandLineMaximum: Int(cmdlineSize))
    }
}
