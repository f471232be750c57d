import AllocationLedger
import DebugInfo
import GuestInterface
import GuestMemory
import Introspection
import Synchronization
import X86

/// Says who made an allocator call: the kernel's `current` task at a trap, its thread id, the
/// call's stack; and names each address space's process to the ledger at its first event, with
/// its file mappings (read again when a return address falls outside them: a library was loaded).
final class ProcessIdentifier: Sendable {
    static let maximumModuleRefreshes = 32

    let kernel: GuestKernel
    let ledger: AllocationLedger
    /// Guards the file-mapping ranges known per address space.
    let spaces = Mutex([PageTableRoot: SpaceInfo]())

    /// The CFI tables of the files each address space maps.
    let unwind: UnwindTables
    let stackDepth = Atomic<Int>(UserAllocationTracker.defaultStackDepth)

    init(kernel: GuestKernel, ledger: AllocationLedger, files: GuestSymbolFiles) {
        self.kernel = kernel
        self.ledger = ledger
        self.unwind = UnwindTables(files: files)
    }

    /// The kernel's view at a user trap and the vCPU's `current` task (0 when it cannot be read).
    func kernelContext(of trap: GuestTrap, memory: GuestMemory) -> (view: KernelView?, task: UInt64) {
        guard let view = try? KernelView(kernel: kernel, memory: memory, vcpus: [trap.state]) else { return (nil, 0) }
        return (view, (try? view.currentTasks()[trap.state.index]) ?? 0)
    }

    /// The allocator's own address, its return address, then the callers, found with the CFI
    /// tables of the files mapped where each frame's code lies and along the frame-pointer chain
    /// where a file has no CFI or no host copy (`CallFrameWalker`), at most `stackDepth` frames.
    /// The first two frames are always exact.
    /// `extraFrames`: walk that many more (a call named by its call site drops the allocator's own).
    func captureStack(site: UInt64, returnAddress: UInt64, framePointer: UInt64, stackPointer: UInt64,
                      root: PageTableRoot, user: UserMemory, extraFrames: Int = 0) -> (frames: [UInt64], counts: CallFrameWalker.Counts) {
        var stack = UserStackReader(user)
        return captureStack(site: site, returnAddress: returnAddress, framePointer: framePointer, stackPointer: stackPointer,
                            root: root, extraFrames: extraFrames, read: { stack.word($0) })
    }

    /// `captureStack` over words `read` gives (a copy of the stack an exitless entry record made).
    func captureStack(site: UInt64, returnAddress: UInt64, framePointer: UInt64, stackPointer: UInt64,
                      root: PageTableRoot, extraFrames: Int = 0, read: (UInt64) -> UInt64?) -> (frames: [UInt64], counts: CallFrameWalker.Counts) {
        CallFrameWalker(maximumFrames: stackDepth.load(ordering: .relaxed) + extraFrames)
            .walk(site: site, returnAddress: returnAddress, stackPointer: stackPointer, framePointer: framePointer,
                  rule: unwind.rules(of: root), read: read)
    }

    /// The guest thread id of the trapped thread (`current->pid`). On the first event of an
    /// address space also names its process and records its file mappings (where a stack walk
    /// finds its CFI tables); later, re-reads the mappings when one of the two exact frames lies
    /// outside them (a library was loaded).
    func identify(view: KernelView?, current: UInt64, root: PageTableRoot, stack: [UInt64]) -> Int32 {
        guard let view, current != 0 else { return 0 }
        let known = spaces.withLock { $0[root] }
        let exact = stack.prefix(2)
        if let known, exact.allSatisfy(known.covers) || known.refreshes >= Self.maximumModuleRefreshes, unwind.knows(root) {
            return (try? view.threadID(ofTask: current)) ?? 0
        }
        guard let task = try? view.task(at: current) else { return 0 }
        let modules = (try? view.mappings(ofMM: task.mm)) ?? []
        unwind.update(root, mappings: modules)
        let ranges = modules.filter { $0.path.hasPrefix("/") }.map { $0.start..<$0.end }
        if known == nil {
            let leader = (try? view.process(task.tgid)) ?? task
            // The main executable is mapped first (lowest), before the heap and libraries.
            let executable = modules.first { $0.path.hasPrefix("/") }?.path
            ledger.identify(root, as: ProcessIdentity(pid: task.tgid, command: leader.name, executable: executable),
                            modules: modules)
        } else {
            ledger.updateModules(root, modules)
        }
        spaces.withLock { $0[root] = SpaceInfo(ranges: ranges, refreshes: min(known?.refreshes ?? -1, Self.maximumModuleRefreshes) + 1) }
        return task.pid
    }

    /// Forgets an address space torn down.
    func forget(_ root: PageTableRoot) {
        spaces.withLock { _ = $0.removeValue(forKey: root) }
        unwind.forget(root)
    }
}

/// What the identifier keeps per address space to avoid re-reading the guest on every trap: the
/// address ranges of its file mappings (refreshed when a return address falls outside them).
struct SpaceInfo: Sendable, Codable {
    var ranges: [Range<UInt64>]
    var refreshes = 0

    func covers(_ pc: UInt64) -> Bool { ranges.contains { $0.contains(pc) } }
}
