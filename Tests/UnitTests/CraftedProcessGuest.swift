import GuestInterface
import GuestMemory
import Introspection
import Synchronization
import Testing
import X86

/// A guest with one crafted user process, built over `CraftedKernelMemory` (the real kernel's
/// symbols and BTF layouts): `init_task` and one task (PID 42) in the task list, its `mm_struct`
/// with a maple tree of two VMAs (a writable data mapping and `[heap]`), its own 4-level page
/// tables mapping them with 2 MiB pages, and a vCPU running it in user mode (`current_task` in
/// a per-CPU area). Blocks and pointers are written by the test into real guest memory.
struct CraftedProcessGuest {
    /// The process's mappings: data (roots) and the brk heap (blocks), two 4 KiB pages each of
    /// 2 MiB user pages backed by `dataPhysical` and `heapPhysical`.
    static let data: UInt64 = 0x40_0000, dataPhysical: UInt64 = 0x60_0000
    static let heap: UInt64 = 0x60_0000, heapPhysical: UInt64 = 0x80_0000
    static let dataEnd = data + 0x2000, heapEnd = heap + 0x4000
    /// Kernel objects live in one 2 MiB window of the direct map backed by guest-physical 4 MiB.
    static let kernelWindow: UInt64 = 0xFFFF_8880_0040_0000, kernelWindowPhysical: UInt64 = 0x40_0000
    static let taskOffset: UInt64 = 0x1_0000, mmOffset: UInt64 = 0x2_0000, mapleOffset: UInt64 = 0x3_0000
    static let dataAreaOffset: UInt64 = 0x3_1000, heapAreaOffset: UInt64 = 0x3_2000
    static let pml4Offset: UInt64 = 0x4_0000, pdptOffset: UInt64 = 0x4_1000, pdOffset: UInt64 = 0x4_2000
    static let perCPUOffset: UInt64 = 0x10_0000

    var crafted: CraftedKernelMemory
    var memory: GuestMemory { crafted.memory }
    var kernel: GuestKernel { crafted.kernel }
    /// The process's page-table root: the key of its ledger space.
    let root = PageTableRoot(tableAddress: GuestPhysicalAddress(kernelWindowPhysical + pml4Offset))
    let task = kernelWindow + taskOffset
    let mm = kernelWindow + mmOffset
    let vcpus: [VCPUSnapshot]

    init() throws {
        crafted = try CraftedKernelMemory(size: 16 << 20)
        let kernel = crafted.kernel
        let initTask = try #require(kernel.symbols.address(of: "init_task"))
        let entry = try #require(kernel.symbols.address(of: "entry_SYSCALL_64"))
        let currentTask = try #require(kernel.symbols.perCPUOffset(of: "current_task"))
        try #require(Self.perCPUOffset + currentTask + 8 <= CraftedKernelMemory.twoMiB)
        try crafted.map(initTask, to: 0x20_0000)
        try crafted.map(Self.kernelWindow, to: Self.kernelWindowPhysical)
        let perCPUBase = Self.kernelWindow + Self.perCPUOffset
        // The vCPU runs the process in user mode: its swapped-out GS base is the kernel's per-CPU base.
        vcpus = [VCPUSnapshot(index: 0, registers: GeneralRegisters(), cr3: 0x1000, cr4: 0, efer: 0x500, privilegeLevel: 3,
                              systemCallEntry: entry, gsBase: 0, kernelGSBase: perCPUBase)]
        try crafted.put64(task, at: perCPUBase + currentTask)

        let t = kernel.layout.task
        func writeTask(_ address: UInt64, pid: UInt32, name: String, next: UInt64, mm: UInt64) throws {
            try crafted.put32(pid, at: address + UInt64(t.pid))
            try crafted.put32(pid, at: address + UInt64(t.tgid))
            try crafted.put64(next + UInt64(t.tasks), at: address + UInt64(t.tasks))
            try crafted.put64(address + UInt64(t.threadGroup), at: address + UInt64(t.threadGroup))
            try crafted.put64(initTask, at: address + UInt64(t.realParent))
            try crafted.put64(mm, at: address + UInt64(t.mm))
            for (i, byte) in (Array(name.utf8) + [0]).enumerated() { try crafted.put8(byte, at: address + UInt64(t.comm + i)) }
        }
        try writeTask(initTask, pid: 0, name: "swapper/0", next: task, mm: 0)
        try writeTask(task, pid: 42, name: "leaky", next: initTask, mm: mm)

        // mm: page tables, brk, and a maple tree leaf of two VMAs.
        let l = kernel.layout
        let window = { (offset: UInt64) in Self.kernelWindow + offset }
        try crafted.put64(window(Self.pml4Offset), at: mm + UInt64(l.mm.pgd))
        try crafted.put64(Self.kernelWindowPhysical + Self.pdptOffset | 7, at: window(Self.pml4Offset))
        try crafted.put64(Self.kernelWindowPhysical + Self.pdOffset | 7, at: window(Self.pdptOffset))
        try crafted.put64(Self.dataPhysical | 0x87, at: window(Self.pdOffset) + 8 * (Self.data >> 21))
        try crafted.put64(Self.heapPhysical | 0x87, at: window(Self.pdOffset) + 8 * (Self.heap >> 21))
        try crafted.put64(Self.heap, at: mm + UInt64(l.mm.startBrk))
        try crafted.put64(Self.heapEnd, at: mm + UInt64(l.mm.brk))
        let maple = l.maple
        let node = window(Self.mapleOffset)
        try crafted.put64(node | (maple.typeLeaf64 << 3) | 2, at: mm + UInt64(l.mm.mapleRoot))
        let areas = [(window(Self.dataAreaOffset), Self.data, Self.dataEnd), (window(Self.heapAreaOffset), Self.heap, Self.heapEnd)]
        for (i, (area, start, end)) in areas.enumerated() {
            try crafted.put64(area, at: node + UInt64(maple.range.slots + 8 * i))
            try crafted.put64(end - 1, at: node + UInt64(maple.range.pivots + 8 * i))
            try crafted.put64(start, at: area + UInt64(l.vma.start))
            try crafted.put64(end, at: area + UInt64(l.vma.end))
            try crafted.put64(3, at: area + UInt64(l.vma.flags))  // VM_READ | VM_WRITE, anonymous
        }
        try crafted.put8(UInt8(areas.count - 1), at: node + UInt64(maple.range.metaEnd))
    }

    /// Writes a word into the process's memory at user address `address` (in data or heap).
    func putUser(_ value: UInt64, at address: UInt64) throws {
        let physical = address < Self.heap ? address - Self.data + Self.dataPhysical : address - Self.heap + Self.heapPhysical
        try memory.store(value, at: GuestPhysicalAddress(physical))
    }

    /// The guest-physical frame number behind user address `address`.
    static func frame(of address: UInt64) -> UInt64 {
        (address < heap ? address - data + dataPhysical : address - heap + heapPhysical) >> 12
    }
}

/// An `InspectableGuest` over crafted memory: reads are real; only the pause (which can be made
/// to fail) and the page-write log (the frames the test says were written) are the fake's.
final class CraftedInspectableGuest: InspectableGuest {
    struct PauseRefused: Error, CustomStringConvertible {
        var description: String { "the vCPUs did not stop (test)" }
    }

    let memory: GuestMemory
    let vcpus: [VCPUSnapshot]
    let writeLog = ScriptedWriteLog()
    private let pauseFails = Mutex(false)
    private let pauses = Mutex(0)

    init(_ guest: CraftedProcessGuest) {
        memory = guest.memory
        vcpus = guest.vcpus
    }

    /// Whether later pauses fail (as a guest whose vCPUs do not stop in time).
    func failPauses(_ fail: Bool) { pauseFails.withLock { $0 = fail } }
    /// How many pauses succeeded.
    var pauseCount: Int { pauses.withLock { $0 } }

    /// What the guest does once a pause ends (run once, then cleared): writes and allocations
    /// the work after the pause must not see.
    nonisolated(unsafe) var afterPause: (() throws -> Void)?
    /// What the guest does just before a pause (run once, then cleared): after a scan's
    /// concurrent phase read it, before its exact phase.
    nonisolated(unsafe) var beforePause: (() throws -> Void)?

    func withGuestPaused<T>(timeout: Double, _ body: (PausedGuest) throws -> T) throws -> T {
        if let runs = beforePause {
            beforePause = nil
            try runs()
        }
        if pauseFails.withLock({ $0 }) { throw PauseRefused() }
        pauses.withLock { $0 += 1 }
        let result = try body(PausedGuest(memory: memory, vcpus: vcpus))
        if let runs = afterPause {
            afterPause = nil
            try runs()
        }
        return result
    }

    func startWriteLog() throws -> any GuestWriteTracking { writeLog }
    func stopWriteLog(_ reader: any GuestWriteTracking) throws {}
}

/// A page-write log that reports exactly the frames the test marks written (or fails when told).
final class ScriptedWriteLog: GuestWriteTracking {
    struct Unavailable: Error, CustomStringConvertible {
        var description: String { "write log lost (test)" }
    }

    private let pending = Mutex<(frames: Set<UInt64>, fails: Bool)>(([], false))

    func markWritten(_ frames: [UInt64]) { pending.withLock { $0.frames.formUnion(frames) } }
    func failHarvests(_ fail: Bool) { pending.withLock { $0.fails = fail } }

    func harvest() throws -> WrittenFrames {
        let frames: [UInt64]? = pending.withLock { p in
            guard !p.fails else { return nil }
            defer { p.frames = [] }
            return p.frames.sorted()
        }
        guard let frames else { throw Unavailable() }
        return WrittenFrames(frames: frames, endedAt: 0)
    }
}
