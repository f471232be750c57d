import GuestInterface
import GuestMemory
import Introspection
import Synchronization
import X86

/// A kernel function entry the kernel tracker traps with `out 0xEB, al` over its ftrace `nopl`.
enum KernelEventHook: String, Sendable, CaseIterable {
    /// The tracepoint iterators the jump labels lead to once the monitor enables them.
    case kmalloc = "__traceiter_kmalloc"
    case kmemCacheAlloc = "__traceiter_kmem_cache_alloc"
    case kfree = "__traceiter_kfree"
    case kmemCacheFree = "__traceiter_kmem_cache_free"
    /// Frees without a tracepoint: `kmem_cache_free_bulk` (`kfree_bulk`) and `vfree`.
    case freeBulk = "kmem_cache_free_bulk"
    case vfree = "vfree"
    /// Allocations without a tracepoint, whose result is read when they return (through the
    /// monitor's return site: the `vfree` hook): `__vmalloc_node_range` and `kmem_cache_alloc_bulk`.
    case vmalloc = "__vmalloc_node_range"
    case allocBulk = "kmem_cache_alloc_bulk"

    /// Whether the hook's event is complete only when the function returns.
    var needsReturn: Bool { self == .vmalloc || self == .allocBulk }

    /// Whether the hook is a tracepoint iterator (left by emulating its `ret`, not by running it).
    var isTracepoint: Bool { tracepoint != nil }

    /// The tracepoint (`__tracepoint_<name>`) whose iterator this is.
    var tracepoint: String? {
        switch self {
        case .kmalloc: return "kmalloc"
        case .kmemCacheAlloc: return "kmem_cache_alloc"
        case .kfree: return "kfree"
        case .kmemCacheFree: return "kmem_cache_free"
        case .freeBulk, .vfree, .vmalloc, .allocBulk: return nil
        }
    }
}

/// One change the kernel tracker made to guest kernel memory, with the bytes it replaced.
struct KernelPatch: Sendable {
    enum Kind: Sendable, Equatable {
        /// `out 0xEB, al` over a function's ftrace `nopl`.
        case entryHook(KernelEventHook)
        /// A tracepoint's jump-label site turned from its nop into the `jmp` the kernel writes.
        case jumpSite(tracepoint: String)
        /// A tracepoint's probe list (`tracepoint.funcs`) made non-null so that the enabled site
        /// calls the iterator.
        case probeList(tracepoint: String)
    }
    let kind: Kind
    let address: GuestVirtualAddress
    let physical: GuestPhysicalAddress
    let original: [UInt8]
    let written: [UInt8]
}

/// What restoring the kernel patches did.
public struct KernelRestoreSummary: Sendable, Equatable {
    public var bytesRestored = 0
    /// Bytes left alone because the guest had changed them since the monitor wrote them.
    public var bytesChangedByGuest = 0
    public var pagesCompared = 0
    public var pagesIdentical = 0
    /// Return addresses of vmalloc / bulk allocation calls in flight put back on their stacks.
    public var returnAddressesRestored = 0
    public var notes: [String] = []
}

/// Writes the kernel tracker's changes into the guest kernel and takes them back: every write
/// checks the bytes it replaces, remembers them and the page as it was before the first write;
/// `restore` puts back only bytes still as the monitor left them, in the reverse order.
final class KernelTextPatcher: Sendable {
    static let ftraceNop: [UInt8] = [0x0F, 0x1F, 0x44, 0x00, 0x00]
    static let endbr64: [UInt8] = [0xF3, 0x0F, 0x1E, 0xFA]

    struct Table: Sendable {
        var patches: [KernelPatch] = []
        /// Hook address (where the `out` is) → what it traps.
        var hooks: [UInt64: KernelEventHook] = [:]
        var pagesBefore: [GuestPhysicalAddress: [UInt8]] = [:]
    }

    let table = Mutex(Table())

    /// What the hook at `address` traps, if it is one of ours.
    func hook(at address: UInt64) -> KernelEventHook? { table.withLock { $0.hooks[address] } }

    /// The addresses of the hooks planted now, ascending.
    func hookAddresses() -> [UInt64] { table.withLock { $0.hooks.keys.sorted() } }

    var patchCount: Int { table.withLock { $0.patches.count } }

    /// How many patches of each kind are in place.
    func count(where predicate: (KernelPatch.Kind) -> Bool) -> Int { table.withLock { $0.patches.filter { predicate($0.kind) }.count } }

    /// Replaces the ftrace `nopl` at the entry of `hook`'s function (after an `endbr64`, if any)
    /// with `out 0xEB, al`. Returns the hook's address.
    func hookEntry(_ hook: KernelEventHook, view: KernelView) throws(KernelTrackingError) -> UInt64 {
        let function: GuestVirtualAddress
        do { function = try view.symbol(hook.rawValue) } catch { throw .kernel(error) }
        var address = function.rawValue
        var bytes = try read(address, count: 9, view: view, what: hook.rawValue)
        if bytes.starts(with: Self.endbr64) {
            address &+= 4
            bytes = Array(bytes.dropFirst(4))
        }
        guard bytes.starts(with: Self.ftraceNop) else {
            throw .unexpectedBytes(hook.rawValue, Array(bytes.prefix(5)))
        }
        try patch(.entryHook(hook), at: address, expecting: Self.ftraceNop, writing: KernelHookPort.instruction + [0x44, 0x00, 0x00],
                  view: view)
        table.withLock { $0.hooks[address] = hook }
        return address
    }

    /// Writes `written` at `address` if the guest holds `expecting` there (same length, one page);
    /// remembers the original. Writes of up to 8 bytes within one aligned quadword are made
    /// with one 8-byte store, so that a vCPU never fetches half an instruction.
    func patch(_ kind: KernelPatch.Kind, at address: UInt64, expecting: [UInt8], writing written: [UInt8],
               view: KernelView) throws(KernelTrackingError) {
        precondition(expecting.count == written.count)
        guard (address & 0xFFF) + UInt64(written.count) <= 4096 else { throw .crossesPage(kindName(kind), address) }
        let physical = try translate(address, view: view, what: kindName(kind))
        let memory = view.memory
        let current: [UInt8]
        do { current = try memory.read(at: physical, count: expecting.count) } catch { throw .memory(error) }
        guard current == expecting else { throw .unexpectedBytes(kindName(kind), current) }
        rememberPage(physical, memory: memory)
        do { try Self.store(written, at: physical, memory: memory) } catch { throw .memory(error) }
        table.withLock { $0.patches.append(KernelPatch(kind: kind, address: GuestVirtualAddress(address), physical: physical,
                                                       original: current, written: written)) }
    }

    /// Writes `bytes` with one aligned 8-byte store when they fit in one quadword.
    static func store(_ bytes: [UInt8], at physical: GuestPhysicalAddress, memory: GuestMemory) throws(GuestMemoryError) {
        let offset = Int(physical.rawValue & 7)
        guard offset + bytes.count <= 8 else {
            try memory.write(bytes, at: physical)
            return
        }
        let aligned = GuestPhysicalAddress(physical.rawValue & ~7)
        var word = try memory.load(UInt64.self, at: aligned)
        for (i, byte) in bytes.enumerated() {
            let shift = UInt64(8 * (offset + i))
            word = (word & ~(0xFF << shift)) | (UInt64(byte) << shift)
        }
        try memory.store(word, at: aligned)
    }

    func read(_ address: UInt64, count: Int, view: KernelView, what: String) throws(KernelTrackingError) -> [UInt8] {
        do { return try view.space.read(GuestVirtualAddress(address), count: count) } catch { throw .unreadable(what, address) }
    }

    func translate(_ address: UInt64, view: KernelView, what: String) throws(KernelTrackingError) -> GuestPhysicalAddress {
        do { return try view.space.translate(GuestVirtualAddress(address)).physicalAddress } catch { throw .unreadable(what, address) }
    }

    private func kindName(_ kind: KernelPatch.Kind) -> String {
        switch kind {
        case .entryHook(let hook): return hook.rawValue
        case .jumpSite(let tracepoint): return "a jump-label site of the \(tracepoint) tracepoint"
        case .probeList(let tracepoint): return "__tracepoint_\(tracepoint).funcs"
        }
    }

    private func rememberPage(_ physical: GuestPhysicalAddress, memory: GuestMemory) {
        let page = physical.alignedDown(to: 4096)
        guard table.withLock({ $0.pagesBefore[page] == nil }), let bytes = try? memory.read(at: page, count: 4096) else { return }
        table.withLock { t in if t.pagesBefore[page] == nil { t.pagesBefore[page] = bytes } }
    }

    /// Puts back the patches made after the first `count` (a tracepoint whose arming failed
    /// half-way), newest first; the hooks among them are forgotten.
    func rollBack(to count: Int, memory: GuestMemory) {
        let undone = table.withLock { t -> [KernelPatch] in
            guard t.patches.count > count else { return [] }
            let tail = Array(t.patches[count...])
            t.patches.removeLast(t.patches.count - count)
            for patch in tail { t.hooks[patch.address.rawValue] = nil }
            return tail
        }
        for patch in undone.reversed() where (try? memory.read(at: patch.physical, count: patch.written.count)) == patch.written {
            try? Self.store(patch.original, at: patch.physical, memory: memory)
        }
    }

    /// Puts back every patch still as the monitor left it, newest first (jump sites before the
    /// probe lists before the hooks), then compares each page written into with its copy.
    /// Empties the table. Call with the guest paused (or before it ran the patched code).
    func restore(memory: GuestMemory) -> KernelRestoreSummary {
        let taken = table.withLock { t in
            defer { t = Table() }
            return t
        }
        var summary = KernelRestoreSummary()
        for patch in taken.patches.reversed() {
            if (try? memory.read(at: patch.physical, count: patch.written.count)) == patch.written,
               (try? Self.store(patch.original, at: patch.physical, memory: memory)) != nil {
                summary.bytesRestored += patch.original.count
            } else {
                summary.bytesChangedByGuest += patch.original.count
                summary.notes.append("\(kindName(patch.kind)) at \(hex(patch.address.rawValue)) was changed by the guest; left alone")
            }
        }
        for (page, before) in taken.pagesBefore {
            summary.pagesCompared += 1
            if (try? memory.read(at: page, count: before.count)) == before { summary.pagesIdentical += 1 }
        }
        return summary
    }
}
