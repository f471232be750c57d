import AllocationLedger
import AllocationTracing
import GuestMemory
import Introspection
import LeakAnalysis
import X86

/// Guest memory for the kernel-view target: page tables, four 2 MiB windows of kernel memory
/// and a well-formed set of kernel objects written by `baseline`, restored after every input.
final class CraftedGuest: @unchecked Sendable {
    static let windowSize: UInt64 = 2 << 20
    static let heapVirtual: UInt64 = 0xFFFF_8880_0060_0000
    static let heapPhysical: UInt64 = 0x60_0000
    static let vmemmapVirtual: UInt64 = 0xFFFF_EA00_0000_0000
    static let userBase: UInt64 = 0x40_0000

    /// Offsets of the crafted objects in the heap window.
    enum Heap {
        static let arguments: UInt64 = 0x100
        static let leader: UInt64 = 0x1_0000, thread: UInt64 = 0x2_0000, mm: UInt64 = 0x3_0000
        static let maple: UInt64 = 0x4_0000, heapArea: UInt64 = 0x4_1000, fileArea: UInt64 = 0x4_2000, stackArea: UInt64 = 0x4_3000
        static let file: UInt64 = 0x5_0000, inode: UInt64 = 0x5_1000, superBlock: UInt64 = 0x5_2000
        static let dentry: UInt64 = 0x5_3000, rootDentry: UInt64 = 0x5_4000, mount: UInt64 = 0x5_5000, name: UInt64 = 0x5_6000
        static let mapping: UInt64 = 0x5_7000
        static let pml4: UInt64 = 0x7_0000, pdpt: UInt64 = 0x7_1000, pd: UInt64 = 0x7_2000
    }

    let kernel: GuestKernel
    let memory: GuestMemory
    /// Guest-physical start of each window: init_task's page, vmemmap_base's page, heap, vmemmap.
    private(set) var windows: [UInt64] = []
    private var baseline: [(physical: UInt64, bytes: [UInt8])] = []
    private var nextTable: UInt64 = 0x2000
    private var pages: [UInt64: UInt64] = [:]

    init(kernel: GuestKernel) throws {
        self.kernel = kernel
        memory = try GuestMemory(size: 12 << 20)
        guard let initTask = kernel.symbols.address(of: "init_task") else { throw IntrospectionError.missingSymbol("init_task") }
        try map(initTask, to: 0x20_0000)
        var vmemmapWindow: UInt64 = 0x40_0000
        if let variable = kernel.symbols.address(of: "vmemmap_base") {
            if let page = pages[variable & ~(Self.windowSize - 1)] { vmemmapWindow = page } else { try map(variable, to: 0x40_0000) }
        }
        try map(Self.heapVirtual, to: Self.heapPhysical)
        try map(Self.vmemmapVirtual, to: 0x80_0000)
        windows = [0x20_0000, vmemmapWindow, Self.heapPhysical, 0x80_0000]
        try layOut(initTask: initTask)
        restore()
    }

    func heap(_ offset: UInt64) -> UInt64 { Self.heapVirtual + offset }

    /// Writes the well-formed guest again over whatever an input changed.
    func restore() {
        for (physical, bytes) in baseline { try? memory.write(bytes, at: GuestPhysicalAddress(physical)) }
    }

    func view() throws -> KernelView {
        guard let entry = kernel.symbols.address(of: "entry_SYSCALL_64") else { throw IntrospectionError.missingSymbol("entry_SYSCALL_64") }
        let cpu = VCPUSnapshot(index: 0, registers: GeneralRegisters(), cr3: 0x1000, cr4: 0, efer: 0x500,
                               privilegeLevel: 0, systemCallEntry: entry, gsBase: 0, kernelGSBase: 0)
        return try KernelView(kernel: kernel, memory: memory, vcpus: [cpu])
    }

    /// Maps the 2 MiB page holding kernel address `virtual` to guest RAM at `physical`.
    private func map(_ virtual: UInt64, to physical: UInt64) throws {
        let page = virtual & ~(Self.windowSize - 1)
        var table: UInt64 = 0x1000
        for shift: UInt64 in [39, 30] {
            let slot = GuestPhysicalAddress(table + ((page >> shift) & 0x1FF) * 8)
            var entry = try memory.load(UInt64.self, at: slot)
            if entry == 0 {
                entry = nextTable | 3
                nextTable += 0x1000
                try memory.store(entry, at: slot)
            }
            table = entry & ~UInt64(0xFFF)
        }
        try memory.store(physical | 0x83, at: GuestPhysicalAddress(table + ((page >> 21) & 0x1FF) * 8))
        pages[page] = physical
    }

    private func physical(_ virtual: UInt64) -> UInt64? {
        pages[virtual & ~(Self.windowSize - 1)].map { $0 + virtual % Self.windowSize }
    }

    private func put(_ bytes: [UInt8], at virtual: UInt64) {
        guard let at = physical(virtual) else { return }
        baseline.append((at, bytes))
    }

    private func put64(_ value: UInt64, at virtual: UInt64) {
        put((0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }, at: virtual)
    }

    private func put32(_ value: UInt32, at virtual: UInt64) {
        put((0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) }, at: virtual)
    }

    private func layOut(initTask: UInt64) throws {
        let l = kernel.layout
        let t = l.task
        let leader = heap(Heap.leader), thread = heap(Heap.thread), mm = heap(Heap.mm)
        func task(_ address: UInt64, pid: UInt32, tgid: UInt32, name: String, next: UInt64, group: UInt64, mm: UInt64) {
            put32(pid, at: address + UInt64(t.pid))
            put32(tgid, at: address + UInt64(t.tgid))
            put64(next + UInt64(t.tasks), at: address + UInt64(t.tasks))
            put64(group + UInt64(t.threadGroup), at: address + UInt64(t.threadGroup))
            put64(initTask, at: address + UInt64(t.realParent))
            put64(mm, at: address + UInt64(t.mm))
            put64(heap(0x8_0000), at: address + UInt64(t.stack))
            put(Array(name.utf8) + [0], at: address + UInt64(t.comm))
        }
        task(initTask, pid: 0, tgid: 0, name: "swapper/0", next: leader, group: initTask, mm: 0)
        task(leader, pid: 42, tgid: 42, name: "prog", next: initTask, group: thread, mm: mm)
        task(thread, pid: 43, tgid: 42, name: "prog", next: initTask, group: leader, mm: mm)
        put32(1, at: thread + UInt64(t.state))

        // mm: pgd (user page tables in the heap window), argv, brk, stack, the maple tree.
        put64(heap(Heap.pml4), at: mm + UInt64(l.mm.pgd))
        put64(heap(Heap.pdpt) - Self.heapVirtual + Self.heapPhysical | 7, at: heap(Heap.pml4))
        put64(heap(Heap.pd) - Self.heapVirtual + Self.heapPhysical | 7, at: heap(Heap.pdpt))
        put64(Self.heapPhysical | 0x87, at: heap(Heap.pd) + 8 * ((Self.userBase >> 21) & 0x1FF))
        put(Array("prog\0-v\0".utf8), at: heap(Heap.arguments))
        put64(Self.userBase + Heap.arguments, at: mm + UInt64(l.mm.argStart))
        put64(Self.userBase + Heap.arguments + 8, at: mm + UInt64(l.mm.argEnd))
        put64(0x60_0000, at: mm + UInt64(l.mm.startBrk))
        put64(0x60_1000, at: mm + UInt64(l.mm.brk))
        put64(0x7FFF_F000_0800, at: mm + UInt64(l.mm.startStack))

        let maple = l.maple
        let node = heap(Heap.maple)
        put64(node | (maple.typeLeaf64 << 3) | 2, at: mm + UInt64(l.mm.mapleRoot))
        let areas: [(UInt64, UInt64, UInt64, UInt64)] = [       // object, start, end, flags
            (heap(Heap.fileArea), 0x40_0000, 0x40_1000, 5), (heap(Heap.heapArea), 0x60_0000, 0x60_1000, 3),
            (heap(Heap.stackArea), 0x7FFF_F000_0000, 0x7FFF_F000_1000, 3),
        ]
        for (i, area) in areas.enumerated() {
            put64(area.0, at: node + UInt64(maple.range.slots + 8 * i))
            put64(area.2 - 1, at: node + UInt64(maple.range.pivots + 8 * i))
            put64(area.1, at: area.0 + UInt64(l.vma.start))
            put64(area.2, at: area.0 + UInt64(l.vma.end))
            put64(area.3, at: area.0 + UInt64(l.vma.flags))
        }
        put([UInt8(areas.count - 1)], at: node + UInt64(maple.range.metaEnd))

        // The file of the first area: /prog on a root mount, with page 0 in the page cache.
        let f = l.files
        let file = heap(Heap.file), dentry = heap(Heap.dentry), root = heap(Heap.rootDentry), mount = heap(Heap.mount)
        put64(file, at: areas[0].0 + UInt64(l.vma.file))
        put64(heap(Heap.inode), at: file + UInt64(f.fileInode))
        put64(7, at: heap(Heap.inode) + UInt64(f.inodeNumber))
        put64(heap(Heap.superBlock), at: heap(Heap.inode) + UInt64(f.inodeSuperBlock))
        put32(0x80_0001, at: heap(Heap.superBlock) + UInt64(f.superBlockDevice))
        put64(dentry, at: file + UInt64(f.filePath + f.pathDentry))
        put64(mount + UInt64(f.mountVFSMount), at: file + UInt64(f.filePath + f.pathMount))
        put64(root, at: mount + UInt64(f.mountVFSMount + f.vfsmountRoot))
        put64(mount, at: mount + UInt64(f.mountParent))
        put64(root, at: dentry + UInt64(f.dentryParent))
        put64(root, at: root + UInt64(f.dentryParent))
        put32(4, at: dentry + UInt64(f.dentryName + f.qstrLength))
        put64(heap(Heap.name), at: dentry + UInt64(f.dentryName + f.qstrName))
        put(Array("prog".utf8), at: heap(Heap.name))
        if case .success(let cache) = l.pageCache {
            if let variable = kernel.symbols.address(of: "vmemmap_base") { put64(Self.vmemmapVirtual, at: variable) }
            let frame = Self.heapPhysical >> 12
            let folio = Self.vmemmapVirtual + frame * UInt64(cache.pageSize)
            put64(heap(Heap.mapping), at: file + UInt64(cache.fileMapping))
            put64(folio, at: heap(Heap.mapping) + UInt64(cache.mappingPages + cache.xarrayHead))
            put64(0, at: folio + UInt64(cache.folioIndex))
        }
    }
}
