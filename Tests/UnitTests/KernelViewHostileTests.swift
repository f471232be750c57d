import AllocationLedger
import AllocationTracing
import BTF
import GuestInterface
import GuestMemory
import Introspection
import LeakAnalysis
import Testing
import X86

/// The kernel view over crafted guest memory: the real kernel's symbols and BTF layouts, but task
/// lists and maple trees written by the test. A guest that loops or points nowhere gets a typed
/// error, never a hang.
@Suite struct KernelViewHostileTests {
    static let kernel = Result { try GuestKernel.load(vmlinux: TestKernelImage.path) }
    /// One 2 MiB page of kernel addresses around init_task, backed by guest-physical 2 MiB.
    static let pageVirtual: UInt64 = 0xFFFF_FFFF_82A0_0000
    static let pagePhysical: UInt64 = 0x20_0000

    struct Guest {
        let memory: GuestMemory
        let kernel: GuestKernel
        let initTask: UInt64

        func put64(_ value: UInt64, at va: UInt64) throws {
            try memory.store(value, at: GuestPhysicalAddress(va - KernelViewHostileTests.pageVirtual + KernelViewHostileTests.pagePhysical))
        }
        func put32(_ value: UInt32, at va: UInt64) throws {
            try memory.store(value, at: GuestPhysicalAddress(va - KernelViewHostileTests.pageVirtual + KernelViewHostileTests.pagePhysical))
        }
        func view() throws -> KernelView {
            let entry = try #require(kernel.symbols.address(of: "entry_SYSCALL_64"))
            let cpu = VCPUSnapshot(index: 0, registers: GeneralRegisters(), cr3: 0x1000, cr4: 0, efer: 0x500,
                                   privilegeLevel: 0, systemCallEntry: entry, gsBase: 0, kernelGSBase: 0)
            return try KernelView(kernel: kernel, memory: memory, vcpus: [cpu])
        }
        /// A task at `address`: pid = tgid, a name, itself as its only thread, init as parent.
        func task(_ address: UInt64, pid: UInt32, name: String, next: UInt64, mm: UInt64 = 0) throws {
            let t = kernel.layout.task
            try put32(pid, at: address + UInt64(t.pid))
            try put32(pid, at: address + UInt64(t.tgid))
            try put64(next + UInt64(t.tasks), at: address + UInt64(t.tasks))
            try put64(address + UInt64(t.threadGroup), at: address + UInt64(t.threadGroup))
            try put64(initTask, at: address + UInt64(t.realParent))
            try put64(mm, at: address + UInt64(t.mm))
            try memory.write(Array(name.utf8) + [0], at: GuestPhysicalAddress(address + UInt64(t.comm) - KernelViewHostileTests.pageVirtual + KernelViewHostileTests.pagePhysical))
        }
    }

    func guest() throws -> Guest {
        let kernel = try Self.kernel.get()
        let memory = try GuestMemory(size: 8 << 20)
        // PML4[511] -> PDPT at 0x2000; PDPT[510] -> PD at 0x3000; PD[21] = 2 MiB page at 2 MiB.
        try memory.store(UInt64(0x2003), at: GuestPhysicalAddress(0x1000 + 511 * 8))
        try memory.store(UInt64(0x3003), at: GuestPhysicalAddress(0x2000 + 510 * 8))
        let pdIndex = (Self.pageVirtual >> 21) & 0x1FF
        try memory.store(Self.pagePhysical | 0x83, at: GuestPhysicalAddress(0x3000 + pdIndex * 8))
        let initTask = try #require(kernel.symbols.address(of: "init_task"))
        #expect(initTask >= Self.pageVirtual && initTask < Self.pageVirtual + (2 << 20))
        return Guest(memory: memory, kernel: kernel, initTask: initTask)
    }

    @Test func aWellFormedTaskListIsRead() throws {
        let g = try guest()
        let b = Self.pageVirtual + 0x10_0000
        try g.task(g.initTask, pid: 0, name: "swapper/0", next: b)
        try g.task(b, pid: 42, name: "victim", next: g.initTask)
        let processes = try g.view().processes()
        #expect(processes.map(\.pid) == [42])
        #expect(processes.first?.name == "victim")
        #expect(processes.first?.parentPID == 0)
        #expect(processes.first?.state == "R")
    }

    @Test func aTaskListThatLoopsIsATypedError() throws {
        let g = try guest()
        let (b, c) = (Self.pageVirtual + 0x10_0000, Self.pageVirtual + 0x11_0000)
        try g.task(g.initTask, pid: 0, name: "swapper/0", next: b)
        try g.task(b, pid: 42, name: "b", next: c)
        try g.task(c, pid: 43, name: "c", next: b)  // never returns to init_task
        #expect {
            try g.view().tasks()
        } throws: { error in
            guard case IntrospectionError.inconsistent = error else { return false }
            return true
        }
    }

    @Test func aTaskPointerIntoNowhereIsATypedError() throws {
        let g = try guest()
        try g.task(g.initTask, pid: 0, name: "swapper/0", next: 0xFFFF_FFFF_9000_0000)
        #expect {
            try g.view().tasks()
        } throws: { error in
            guard case IntrospectionError.read = error else { return false }
            return true
        }
    }

    @Test func aMapleTreeThatPointsAtItselfIsATypedError() throws {
        let g = try guest()
        let (b, mm, node) = (Self.pageVirtual + 0x10_0000, Self.pageVirtual + 0x12_0000, Self.pageVirtual + 0x13_0000)
        try g.task(g.initTask, pid: 0, name: "swapper/0", next: b)
        try g.task(b, pid: 42, name: "b", next: g.initTask, mm: mm)
        let maple = g.kernel.layout.maple
        let encoded = node | (maple.typeRange64 << 3) | 4
        try g.put64(encoded | 2, at: mm + UInt64(g.kernel.layout.mm.mapleRoot))
        // Every slot of the internal node is the node itself; its pivots say it is full.
        for i in 0..<maple.range.pivotCount { try g.put64(UInt64(i + 1) << 12, at: node + UInt64(maple.range.pivots + 8 * i)) }
        for i in 0..<maple.range.slotCount { try g.put64(encoded, at: node + UInt64(maple.range.slots + 8 * i)) }
        #expect {
            try g.view().mappings(of: 42)
        } throws: { error in
            guard case IntrospectionError.inconsistent = error else { return false }
            return true
        }
    }

    /// A pointer whose member lies past 2^64 (found by the kernel-view fuzz target: these trapped).
    static func isPastTheTop(_ error: any Error) -> Bool {
        guard case IntrospectionError.inconsistent(let why) = error else { return false }
        return why.contains("past the top of the address space")
    }

    @Test func aRealParentNearTheTopIsATypedError() throws {
        let g = try guest()
        let b = Self.pageVirtual + 0x10_0000
        try g.task(g.initTask, pid: 0, name: "swapper/0", next: b)
        try g.task(b, pid: 42, name: "victim", next: g.initTask)
        try g.put64(0xFFFF_FFFF_FFFF_FFF8, at: b + UInt64(g.kernel.layout.task.realParent))
        #expect { try g.view().tasks() } throws: { Self.isPastTheTop($0) }
    }

    @Test func aThreadGroupNextNearTheTopIsATypedError() throws {
        let g = try guest()
        let b = Self.pageVirtual + 0x10_0000
        try g.task(g.initTask, pid: 0, name: "swapper/0", next: b)
        try g.task(b, pid: 42, name: "victim", next: g.initTask)
        let t = g.kernel.layout.task
        // The "thread" this names lies so high that its comm (after thread_group) wraps past 2^64.
        try #require(t.comm > t.threadGroup)
        let thread = 0 &- UInt64(t.comm)
        try g.put64(thread + UInt64(t.threadGroup), at: b + UInt64(t.threadGroup))
        #expect { try g.view().tasks() } throws: { Self.isPastTheTop($0) }
    }

    @Test func anMMNearTheTopIsATypedError() throws {
        let g = try guest()
        let b = Self.pageVirtual + 0x10_0000
        try g.task(g.initTask, pid: 0, name: "swapper/0", next: b)
        try g.task(b, pid: 42, name: "victim", next: g.initTask, mm: 0xFFFF_FFFF_FFFF_FFF8)
        let view = try g.view()
        #expect { try view.pageTableRoot(ofMM: 0xFFFF_FFFF_FFFF_FFF8) } throws: { Self.isPastTheTop($0) }
        // The process is still listed, without page tables or arguments.
        let process = try #require(try view.processes().first)
        #expect(process.pid == 42 && process.pageTableRoot == nil && process.arguments.isEmpty)
    }

    @Test func aMapleNodeInTheLastPageIsATypedError() throws {
        let g = try guest()
        let mm = Self.pageVirtual + 0x12_0000
        let maple = g.kernel.layout.maple
        try g.put64(0xFFFF_FFFF_FFFF_FF00 | (maple.typeRange64 << 3) | 2, at: mm + UInt64(g.kernel.layout.mm.mapleRoot))
        #expect(throws: IntrospectionError.self) { try g.view().mappings(ofMM: mm) }
    }

    @Test func aKernelWhoseLSTARIsNotThisImageIsRefused() throws {
        let g = try guest()
        let cpu = VCPUSnapshot(index: 0, registers: GeneralRegisters(), cr3: 0x1000, cr4: 0, efer: 0x500,
                               privilegeLevel: 0, systemCallEntry: 0xFFFF_FFFF_8123_4567, gsBase: 0, kernelGSBase: 0)
        #expect(throws: IntrospectionError.self) { try KernelView(kernel: g.kernel, memory: g.memory, vcpus: [cpu]) }
    }
}
