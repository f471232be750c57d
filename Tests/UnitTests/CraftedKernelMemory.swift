import AllocationLedger
import AllocationTracing
import BTF
import GuestInterface
import GuestMemory
import Introspection
import LeakAnalysis
import Testing
import X86

/// Guest memory crafted for introspection tests: the real kernel image's symbols and BTF
/// layouts, 4-level page tables at 0x1000 that map 2 MiB kernel pages wherever a test puts them,
/// and a vCPU whose IA32_LSTAR is the link-time `entry_SYSCALL_64` (no KASLR slide).
struct CraftedKernelMemory {
    static let realKernel = Result { try GuestKernel.load(vmlinux: TestKernelImage.path) }
    static let twoMiB: UInt64 = 2 << 20

    let memory: GuestMemory
    let kernel: GuestKernel
    /// 2 MiB-aligned kernel address → guest-physical address of its page.
    private var pages: [UInt64: UInt64] = [:]
    /// Page-table pages are taken from here up, below 2 MiB.
    private var nextTable: UInt64 = 0x2000

    init(kernel: GuestKernel? = nil, size: UInt64 = 16 << 20) throws {
        self.kernel = try kernel ?? Self.realKernel.get()
        memory = try GuestMemory(size: size)
    }

    /// Maps the 2 MiB page holding `virtual` to the 2 MiB of guest RAM at `physical`.
    mutating func map(_ virtual: UInt64, to physical: UInt64) throws {
        let page = virtual & ~(Self.twoMiB - 1)
        var table: UInt64 = 0x1000
        for shift: UInt64 in [39, 30] {
            let slot = GuestPhysicalAddress(table + ((page >> shift) & 0x1FF) * 8)
            var entry = try memory.load(UInt64.self, at: slot)
            if entry == 0 {
                entry = nextTable | 3
                nextTable += 0x1000
                #expect(nextTable <= Self.twoMiB)
                try memory.store(entry, at: slot)
            }
            table = entry & ~UInt64(0xFFF)
        }
        try memory.store(physical | 0x83, at: GuestPhysicalAddress(table + ((page >> 21) & 0x1FF) * 8))
        pages[page] = physical
    }

    func physical(_ virtual: UInt64) throws -> GuestPhysicalAddress {
        let page = try #require(pages[virtual & ~(Self.twoMiB - 1)], "0x\(String(virtual, radix: 16)) is not mapped")
        return GuestPhysicalAddress(page + virtual % Self.twoMiB)
    }

    func put64(_ value: UInt64, at virtual: UInt64) throws { try memory.store(value, at: try physical(virtual)) }
    func put32(_ value: UInt32, at virtual: UInt64) throws { try memory.store(value, at: try physical(virtual)) }
    func put8(_ value: UInt8, at virtual: UInt64) throws { try memory.store(value, at: try physical(virtual)) }

    func view() throws -> KernelView {
        let entry = try #require(kernel.symbols.address(of: "entry_SYSCALL_64"))
        let cpu = VCPUSnapshot(index: 0, registers: GeneralRegisters(), cr3: 0x1000, cr4: 0, efer: 0x500,
                               privilegeLevel: 0, systemCallEntry: entry, gsBase: 0, kernelGSBase: 0)
        return try KernelView(kernel: kernel, memory: memory, vcpus: [cpu])
    }
}
