import GuestMemory

/// Loads an uncompressed ELF64 vmlinux at the physical addresses of its PT_LOAD segments.
enum ELFKernel {
    static func load(_ bytes: [UInt8], into memory: GuestMemory) throws(BootError) -> LoadedKernel {
        let r = ByteReader(bytes: bytes)
        guard r.u8(4) == 2 else { throw .unrecognizedKernel("ELF file is not 64-bit") }
        guard r.u8(5) == 1 else { throw .unrecognizedKernel("ELF file is not little-endian") }
        guard r.integer(UInt16.self, at: 18) == 62 else { throw .unrecognizedKernel("ELF file is not for x86-64") }
        guard let entry = r.integer(UInt64.self, at: 24),
              let phoff = r.integer(UInt64.self, at: 32),
              let phentsize = r.integer(UInt16.self, at: 54),
              let phnum = r.integer(UInt16.self, at: 56)
        else { throw .corruptKernel("truncated ELF header") }
        guard phentsize >= 56, phnum > 0, phnum < 64, phoff < UInt64(bytes.count) else {
            throw .corruptKernel("bad program header table")
        }
        var end: UInt64 = 0
        var loaded = 0
        var entryPhysical: UInt64?
        for i in 0..<Int(phnum) {
            let ph = Int(phoff) + i * Int(phentsize)
            guard let type = r.integer(UInt32.self, at: ph),
                  let offset = r.integer(UInt64.self, at: ph + 8),
                  let vaddr = r.integer(UInt64.self, at: ph + 16),
                  let paddr = r.integer(UInt64.self, at: ph + 24),
                  let filesz = r.integer(UInt64.self, at: ph + 32),
                  let memsz = r.integer(UInt64.self, at: ph + 40)
            else { throw .corruptKernel("truncated program header \(i)") }
            guard type == 1 else { continue }  // PT_LOAD
            guard filesz <= memsz, memsz <= UInt64(Int32.max), offset < UInt64(Int.max),
                  let data = r.slice(Int(offset), Int(filesz))
            else { throw .corruptKernel("segment \(i) lies outside the file") }
            let (segEnd, overflow) = paddr.addingReportingOverflow(memsz)
            guard !overflow else { throw .corruptKernel("segment \(i) wraps around") }
            guard memory.contains(GuestPhysicalAddress(paddr), length: Int(memsz)) else {
                throw .kernelDoesNotFit(needed: segEnd, available: memory.lowEnd.rawValue)
            }
            do {
                try memory.write(data, at: GuestPhysicalAddress(paddr))
                if memsz > filesz {
                    try memory.fill(0, at: GuestPhysicalAddress(paddr + filesz), count: Int(memsz - filesz))
                }
            } catch { throw .memory(error) }
            if entry >= vaddr, entry < vaddr &+ memsz { entryPhysical = paddr + (entry - vaddr) }
            end = max(end, segEnd)
            loaded += 1
        }
        guard loaded > 0 else { throw .corruptKernel("no loadable segments") }
        // vmlinux's e_entry is already physical (startup_64 at LOAD_PHYSICAL_ADDR).
        let entryAddress = entryPhysical ?? entry
        guard memory.contains(GuestPhysicalAddress(entryAddress)) else { throw .corruptKernel("entry point outside the image") }
        return LoadedKernel(format: .elf, entry: GuestPhysicalAddress(entryAddress),
                            end: GuestPhysicalAddress(end), setupHeader: nil,
                            initrdAddressMax: 0x7FFF_FFFF, commandLineMaximum: 2047)
    }
}
