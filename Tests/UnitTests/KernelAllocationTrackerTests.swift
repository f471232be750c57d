import AllocationLedger
@testable import AllocationTracing
import GuestInterface
import GuestMemory
import Introspection
import Testing
import X86

/// The kernel tracker on crafted kernel memory laid out with the real guest kernel's symbols
/// and BTF: arming enables exactly the four kmem tracepoints' jump-label sites (as the kernel
/// writes them), points their probe lists at the zero page and hooks the iterators; a trap at
/// an iterator records the event from the registers and returns from the iterator; detach puts
/// back every byte.
struct KernelAllocationTrackerTests {
    static let tracepoints = ["kmalloc", "kmem_cache_alloc", "kfree", "kmem_cache_free"]
    static let stackTop: UInt64 = 0xFFFF_C900_0001_0000
    static let cacheObject: UInt64 = 0xFFFF_8880_0200_0000

    /// Crafted memory with every page the tracker touches mapped, function entries holding the
    /// ftrace nop, and per tracepoint three jump sites: a 5-byte one, a 2-byte one, one in init text.
    struct Guest {
        var crafted: CraftedKernelMemory
        var sites: [String: [(code: UInt64, target: UInt64, size: Int)]] = [:]
        var initSite: UInt64 = 0

        init() throws {
            crafted = try CraftedKernelMemory(size: 64 << 20)
            let kernel = crafted.kernel
            func address(_ name: String) throws -> UInt64 { try #require(kernel.symbols.address(of: name), "\(name) is not in kallsyms") }
            let functions = try KernelEventHook.allCases.map { try address($0.rawValue) }
            let structures = try Self.names.map(address)
            let table = try address("__start___jump_table")
            var physical: UInt64 = 2 << 20
            var mapped: Set<UInt64> = []
            for virtual in functions + structures + [table, stackTop, cacheObject] where mapped.insert(virtual >> 21).inserted {
                try crafted.map(virtual, to: physical)
                physical += 2 << 20
            }
            for function in functions { try crafted.putBytes(KernelTextPatcher.ftraceNop, at: function) }
            // Sites inside kmalloc's iterator page, 0x40 apart, jumping 0x20 ahead.
            var code = (functions[0] & ~0xFFF) + 0x1000
            var entry = table
            func put(_ site: UInt64, target: UInt64, key: UInt64, flags: UInt64) throws {
                try crafted.put32(UInt32(truncatingIfNeeded: site &- entry), at: entry)
                try crafted.put32(UInt32(truncatingIfNeeded: target &- (entry + 4)), at: entry + 4)
                try crafted.put64((key &- (entry + 8)) | flags, at: entry + 8)
                entry += 16
            }
            let keyOffset = UInt64(try kernel.layout.kmem.get().tracepointKey)
            for name in KernelAllocationTrackerTests.tracepoints {
                let key = try address("__tracepoint_" + name) + keyOffset
                for size in [5, 2] {
                    try crafted.putBytes(size == 5 ? JumpLabelCode.nop5 : JumpLabelCode.nop2, at: code)
                    try put(code, target: code + 0x20, key: key, flags: 0)
                    sites[name, default: []].append((code, code + 0x20, size))
                    code += 0x40
                }
            }
            initSite = code
            try crafted.putBytes(JumpLabelCode.nop5, at: initSite)
            try put(initSite, target: initSite + 0x20, key: try address("__tracepoint_kfree") + keyOffset, flags: 2)
        }

        static let names = ["__tracepoint_kmalloc", "__tracepoint_kmem_cache_alloc", "__tracepoint_kfree",
                            "__tracepoint_kmem_cache_free", "empty_zero_page"]

        func bytes(_ virtual: UInt64, _ count: Int) throws -> [UInt8] { try crafted.memory.read(at: try crafted.physical(virtual), count: count) }
        func word(_ virtual: UInt64) throws -> UInt64 { try crafted.memory.load(UInt64.self, at: try crafted.physical(virtual)) }
        func vcpu(_ registers: GeneralRegisters = GeneralRegisters()) throws -> VCPUSnapshot {
            let entry = try #require(crafted.kernel.symbols.address(of: "entry_SYSCALL_64"))
            return VCPUSnapshot(index: 0, registers: registers, cr3: 0x1000, cr4: 0, efer: 0x500, privilegeLevel: 0,
                                systemCallEntry: entry, gsBase: 0, kernelGSBase: 0)
        }
        func symbol(_ name: String) throws -> UInt64 { try #require(crafted.kernel.symbols.address(of: name)) }
    }

    @Test func armingEnablesTheFourTracepointsAndDetachPutsEveryByteBack() throws {
        guard CraftedKernelMemory.realKernel.isSuccess else { return }
        let guest = try Guest()
        let before = try Guest.names.map { try guest.bytes(try guest.symbol($0), 128) }
        let tracker = KernelAllocationTracker(kernel: guest.crafted.kernel)
        let summary = try tracker.arm(memory: guest.crafted.memory, vcpus: [try guest.vcpu()])
        #expect(summary.tracepoints == Self.tracepoints, "\(summary.notes)")
        #expect(summary.jumpSites == 8 && summary.entryHooks.count == 8, "\(summary)")
        let funcsOffset = UInt64(try guest.crafted.kernel.layout.kmem.get().tracepointFuncs)
        for name in Self.tracepoints {
            #expect(try guest.word(try guest.symbol("__tracepoint_" + name) + funcsOffset) == (try guest.symbol("empty_zero_page")))
            for site in guest.sites[name] ?? [] {
                let wanted = site.size == 5 ? [0xE9, 0x1B, 0, 0, 0] : [0xEB, 0x1E] as [UInt8]
                #expect(try guest.bytes(site.code, site.size) == wanted, "\(name) site of \(site.size) bytes")
            }
        }
        #expect(try guest.bytes(guest.initSite, 5) == JumpLabelCode.nop5, "a site in init text is never patched")
        for hook in KernelEventHook.allCases {
            #expect(try guest.bytes(try guest.symbol(hook.rawValue), 5) == [0xE6, 0xEB, 0x44, 0x00, 0x00], "\(hook)")
        }
        let restore = tracker.disarm(PausedGuest(memory: guest.crafted.memory, vcpus: [try guest.vcpu()]))
        #expect(restore.bytesRestored == 8 * 5 + 4 * 8 + 4 * (5 + 2) && restore.bytesChangedByGuest == 0, "\(restore)")
        #expect(restore.pagesCompared > 0 && restore.pagesCompared == restore.pagesIdentical)
        #expect(try Guest.names.map { try guest.bytes(try guest.symbol($0), 128) } == before)
        for name in Self.tracepoints {
            for site in guest.sites[name] ?? [] {
                #expect(try guest.bytes(site.code, site.size) == (site.size == 5 ? JumpLabelCode.nop5 : JumpLabelCode.nop2))
            }
        }
        #expect(tracker.patchesInPlace == 0)
    }

    @Test func aTracepointTheGuestTracesIsLeftAloneWithANote() throws {
        guard CraftedKernelMemory.realKernel.isSuccess else { return }
        let guest = try Guest()
        let funcsOffset = UInt64(try guest.crafted.kernel.layout.kmem.get().tracepointFuncs)
        try guest.crafted.put64(0xFFFF_8880_0300_0000, at: try guest.symbol("__tracepoint_kfree") + funcsOffset)
        let tracker = KernelAllocationTracker(kernel: guest.crafted.kernel)
        let summary = try tracker.arm(memory: guest.crafted.memory, vcpus: [try guest.vcpu()])
        #expect(summary.tracepoints == ["kmalloc", "kmem_cache_alloc", "kmem_cache_free"])
        #expect(summary.notes.count == 1 && summary.notes[0].contains("kfree"), "\(summary.notes)")
        for site in guest.sites["kfree"] ?? [] {
            #expect(try guest.bytes(site.code, site.size) == (site.size == 5 ? JumpLabelCode.nop5 : JumpLabelCode.nop2))
        }
        #expect(try guest.bytes(try guest.symbol("__traceiter_kfree"), 5) == KernelTextPatcher.ftraceNop)
    }

    @Test func aTrapAtAnIteratorRecordsTheEventAndReturnsFromIt() throws {
        guard CraftedKernelMemory.realKernel.isSuccess else { return }
        let guest = try Guest()
        let tracker = KernelAllocationTracker(kernel: guest.crafted.kernel)
        _ = try tracker.arm(memory: guest.crafted.memory, vcpus: [try guest.vcpu()])
        let returnAddress: UInt64 = 0xFFFF_FFFF_8123_4567
        let rsp = Self.stackTop + 0x800
        try guest.crafted.put64(returnAddress, at: rsp)
        // A cache named "dentry" of 192-byte objects in 200-byte slots.
        let layout = try guest.crafted.kernel.layout.kmem.get()
        try guest.crafted.put32(192, at: Self.cacheObject + UInt64(layout.cacheObjectSize))
        try guest.crafted.put32(200, at: Self.cacheObject + UInt64(layout.cacheSize))
        try guest.crafted.put64(Self.cacheObject + 0x1000, at: Self.cacheObject + UInt64(layout.cacheName))
        try guest.crafted.putBytes(Array("dentry".utf8) + [0], at: Self.cacheObject + 0x1000)

        func trap(_ hook: KernelEventHook, _ set: (inout GeneralRegisters) -> Void) throws -> GuestTrap {
            var r = GeneralRegisters()
            r.rip = try guest.symbol(hook.rawValue)
            r.rsp = rsp
            r.rax = 0x55
            set(&r)
            var trap = GuestTrap(state: try guest.vcpu(r), fsBase: 0)
            #expect(tracker.kernelHook(&trap, memory: guest.crafted.memory))
            return trap
        }
        let object: UInt64 = 0xFFFF_8880_0400_0040
        let k = try trap(.kmalloc) { $0.rsi = 0xFFFF_FFFF_8100_0010; $0.rdx = object; $0.rcx = 100; $0.r8 = 128 }
        #expect(k.resume.rip == returnAddress && k.resume.rsp == rsp + 8 && k.resume.rax == 0)
        let stored = tracker.ledger.object(at: object)
        #expect(stored?.requestedSize == 100 && stored?.allocatedSize == 128 && stored?.allocator == .kmalloc
                && stored?.callSite == 0xFFFF_FFFF_8100_0010)
        _ = try trap(.kmemCacheAlloc) { $0.rsi = 1; $0.rdx = object + 0x1000; $0.rcx = Self.cacheObject }
        let cached = tracker.ledger.object(at: object + 0x1000)
        #expect(tracker.ledger.cacheName(cached?.cache) == "dentry" && cached?.requestedSize == 192 && cached?.allocatedSize == 200)
        // A corrupt cache pointer: recorded without a cache, counted.
        _ = try trap(.kmemCacheAlloc) { $0.rsi = 1; $0.rdx = object + 0x2000; $0.rcx = 0xDEAD_BEEF }
        #expect(tracker.ledger.object(at: object + 0x2000)?.cache == nil && tracker.statistics.unreadableCaches == 1)
        _ = try trap(.kfree) { $0.rsi = 2; $0.rdx = object }
        _ = try trap(.kmemCacheFree) { $0.rsi = 2; $0.rdx = object + 0x1000; $0.rcx = Self.cacheObject }
        // A failed allocation: trapped, nothing recorded.
        _ = try trap(.kmalloc) { $0.rsi = 3; $0.rdx = 0 }
        // vfree is an ordinary entry hook: resumed past the nop.
        let v = try trap(.vfree) { $0.rdi = object + 0x3000 }
        #expect(v.resume.rip == (try guest.symbol("vfree")) + 5 && v.resume.rsp == rsp)
        #expect(tracker.ledger.liveObjects().map(\.address) == [object + 0x2000])
        let counts = tracker.statistics
        #expect(counts.traps["__traceiter_kmalloc"] == 2 && counts.events["__traceiter_kmalloc"] == 2 && counts.failedAllocations == 1)
        #expect(counts.totalTraps == 7 && tracker.ledger.counters.freedAllocatedBeforeTracking == 1)
        // A vCPU whose LSTAR the monitor has not read yet (no KernelView): the iterator is still
        // returned from (never run with the monitor's probe list); the event has no stack.
        var early = GeneralRegisters()
        early.rip = try guest.symbol("__traceiter_kfree")
        early.rsp = rsp
        early.rdx = object + 0x2000
        var earlyTrap = GuestTrap(state: VCPUSnapshot(index: 1, registers: early, cr3: 0x1000, cr4: 0, efer: 0x500, privilegeLevel: 0,
                                                      systemCallEntry: 0, gsBase: 0, kernelGSBase: 0), fsBase: 0)
        #expect(tracker.kernelHook(&earlyTrap, memory: guest.crafted.memory))
        #expect(earlyTrap.resume.rip == returnAddress && earlyTrap.resume.rsp == rsp + 8)
        #expect(tracker.ledger.liveCount == 0)
        // Not one of ours.
        var other = GuestTrap(state: try guest.vcpu(), fsBase: 0)
        #expect(!tracker.kernelHook(&other, memory: guest.crafted.memory))
    }
}

extension KernelAllocationTrackerTests {
    @Test func vmallocIsRecordedAtItsReturnAndDetachPutsBackTheReturnAddressOfACallInFlight() throws {
        guard CraftedKernelMemory.realKernel.isSuccess else { return }
        let guest = try Guest()
        let tracker = KernelAllocationTracker(kernel: guest.crafted.kernel)
        let summary = try tracker.arm(memory: guest.crafted.memory, vcpus: [try guest.vcpu()])
        let vfree = try guest.symbol("vfree"), vmalloc = try guest.symbol("__vmalloc_node_range")
        #expect(summary.returnSite == vfree)
        let returnAddress: UInt64 = 0xFFFF_FFFF_8123_4567, caller: UInt64 = 0xFFFF_FFFF_8177_0000
        let rsp = Self.stackTop + 0x900
        try guest.crafted.put64(returnAddress, at: rsp)
        try guest.crafted.put64(caller, at: rsp + 24)
        func trap(_ set: (inout GeneralRegisters) -> Void) throws -> GuestTrap {
            var r = GeneralRegisters()
            set(&r)
            var trap = GuestTrap(state: try guest.vcpu(r), fsBase: 0)
            #expect(tracker.kernelHook(&trap, memory: guest.crafted.memory))
            return trap
        }
        // Entry: the return address now leads to the return site.
        let entry = try trap { $0.rip = vmalloc; $0.rsp = rsp; $0.rdi = 5000 }
        let planted = try guest.word(rsp)
        #expect(entry.resume.rip == vmalloc + 5 && planted == vfree)
        // The return (rsp popped): recorded, and on to the real return address.
        let area: UInt64 = 0xFFFF_C900_0012_3000
        let back = try trap { $0.rip = vfree; $0.rsp = rsp + 8; $0.rax = area }
        #expect(back.resume.rip == returnAddress && back.resume.rsp == rsp + 8 && back.resume.rax == area)
        let object = tracker.ledger.object(at: area)
        #expect(object?.allocator == .vmalloc && object?.requestedSize == 5000 && object?.allocatedSize == 8192 && object?.callSite == caller)
        // A genuine vfree of it: a free, resumed into vfree.
        let free = try trap { $0.rip = vfree; $0.rsp = rsp - 0x100; $0.rdi = area }
        #expect(free.resume.rip == vfree + 5 && tracker.ledger.liveCount == 0)
        #expect(tracker.statistics.traps["__vmalloc_node_range"] == 2 && tracker.statistics.events["__vmalloc_node_range"] == 1)
        // A call in flight at detach gets its return address back.
        try guest.crafted.put64(returnAddress, at: rsp)
        _ = try trap { $0.rip = vmalloc; $0.rsp = rsp; $0.rdi = 100 }
        #expect(try guest.word(rsp) == vfree)
        let restored = tracker.disarm(PausedGuest(memory: guest.crafted.memory, vcpus: [try guest.vcpu()]))
        let putBack = try guest.word(rsp)
        #expect(restored.returnAddressesRestored == 1 && putBack == returnAddress)
        #expect(try guest.bytes(vfree, 5) == KernelTextPatcher.ftraceNop)
    }
}

extension CraftedKernelMemory {
    func putBytes(_ bytes: [UInt8], at virtual: UInt64) throws { try memory.write(bytes, at: try physical(virtual)) }
}
