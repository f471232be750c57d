import AllocationLedger
import AllocationTracing
import GuestMemory
import Introspection
import LeakAnalysis
import X86

/// Page-table walks and reads through an address space whose tables are the input: CR3, CR4,
/// eight queries (kind, virtual address, length), then up to 256 KiB of guest-physical memory
/// from address 0 (the page tables and the data they map).
enum PageWalkerTarget {
    static let memorySize = 256 << 10
    static let ramSize: UInt64 = 1 << 20
    nonisolated(unsafe) static var memory: GuestMemory?

    static let target = FuzzTarget(name: "page-walker", prepare: {
        memory = try? GuestMemory(size: ramSize)
    }) { input in
        guard let memory else { return }
        var input = input
        let cr3 = input.u64(), cr4 = input.u64()
        let queries = (0..<8).map { _ in (kind: input.u8(), address: input.u64(), length: Int(input.u16())) }
        let image = input.take(memorySize)
        try? memory.fill(0, at: GuestPhysicalAddress(0), count: memorySize)
        try? memory.write(image, at: GuestPhysicalAddress(0))
        let space = AddressSpace(memory: memory, cr3: cr3, cr4: cr4, cache: TranslationCache(capacity: 4))
        for query in queries {
            let va = GuestVirtualAddress(query.address)
            switch query.kind % 6 {
            case 0: _ = try? space.translate(va)
            case 1: _ = try? space.permissions(at: va)
            case 2: _ = try? space.read(va, count: query.length)
            case 3: _ = try? space.load(UInt64.self, at: va)
            case 4: _ = try? space.readWords(at: va, count: query.length)
            default: _ = try? space.readCString(at: va, maxLength: query.length)
            }
        }
    }
}
