import X86
import GuestMemory
@testable import Introspection
@testable import Reachability

/// The program headers of an ELF object read from a process's mapping of it: the mapping's end
/// (its start is fixed at 0x400000, the size comes from the input), then the file's first 64 KiB.
enum ELFSegmentsTarget {
    static let mappingStart: UInt64 = 0x40_0000
    static let fileWindow = 64 << 10
    nonisolated(unsafe) static var memory: GuestMemory?

    /// Identity-free 4-level tables at 0x1000-0x3FFF mapping 0x400000 + 64 KiB to physical 0x10000.
    static let target = FuzzTarget(name: "elf-segments", prepare: {
        guard let m = try? GuestMemory(size: 1 << 20) else { return }
        try? m.store(UInt64(0x2007), at: GuestPhysicalAddress(0x1000))
        try? m.store(UInt64(0x3007), at: GuestPhysicalAddress(0x2000))
        try? m.store(UInt64(0x4007), at: GuestPhysicalAddress(0x3000 + 2 * 8))
        for page in 0..<UInt64(fileWindow >> 12) {
            try? m.store((0x10000 + page << 12) | 7, at: GuestPhysicalAddress(0x4000 + page * 8))
        }
        memory = m
    }) { input in
        guard let memory else { return }
        var input = input
        let mappingEnd = input.u64()
        let file = input.take(fileWindow)
        try? memory.fill(0, at: GuestPhysicalAddress(0x10000), count: fileWindow)
        try? memory.write(file, at: GuestPhysicalAddress(0x10000))
        let space = AddressSpace(memory: memory, cr3: 0x1000, cr4: 0)
        _ = ELFSegments.read(mappingStart: mappingStart, mappingEnd: mappingEnd, space: space)
        _ = ELFSegments.read(mappingStart: mappingEnd, mappingEnd: mappingStart &+ UInt64(fileWindow), space: space)
    }
}
