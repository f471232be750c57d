import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import Synchronization
import X86

/// Says who made an allocator call: the kernel's `current` task at a trap, its thread id, the
/// call's stack; and names each address space's process to the ledger at its first event, with
/// its file mappings (read again when a return address falls outside them: a library was loaded).
final class ProcessIdentifier: Sendable {
    static let maximumFrames = 24
    static let maximumModuleRefreshes = 32

    let kernel: GuestKernel
    let ledger: AllocationLedger
    /// Guards the file-mapping ranges known per address space.
    let spaces = Mutex([PageTableRoot: SpaceInfo]())

    init(kernel: GuestKernel, ledger: AllocationLedger) {
        self.kernel = kernel
        self.ledger = ledger
    }

    /// The kernel's view at a user trap and the vCPU's `current` task (0 when it cannot be read).
    func kernelContext(of trap: GuestTrap, memory: GuestMemory) -> (view: KernelView?, task: UInt64) {
        guard let view = try? KernelView(kernel: kernel, memory: memory, vcpus: [trap.state]) else { return (nil, 0) }
        return (view, (try? view.currentTasks()[trap.state.index]) ?? 0)
    }

    /// The allocator's own address, its return address, then the caller's frame-pointer chain
    /// (bounded, increasing, inside 8 MiB of the stack). Callers built without frame pointers end
    /// the chain early; the first two frames are always exact.
    static func captureStack(site: UInt64, returnAddress: UInt64, framePointer: UInt64, stackPointer: UInt64,
                             user: UserMemory) -> [UInt64] {
        var stack = [site, returnAddress]
        var frame = framePointer
        var previous = stackPointer
        while stack.count < maximumFrames, frame > previous, frame &- stackPointer < 8 << 20, frame & 7 == 0,
              let words = try? user.words(frame, count: 2) {
            let (next, pc) = (words[0], words[1])
            guard pc >= 0x1000, pc < 0x8000_0000_0000 else { break }
            stack.append(pc)
            previous = frame
            frame = next
        }
        return stack
    }

    /// The guest thread id of the trapped thread (`current->pid`). On the first event of an
    /// address space also names its process and records its file mappings; later, re-reads the
    /// mappings when one of the two exact frames lies outside them (a library was loaded).
    func identify(view: KernelView?, current: UInt64, root: PageTableRoot, stack: [UInt64]) -> Int32 {
        guard let view, current != 0 else { return 0 }
        let known = spaces.withLock { $0[root] }
        let exact = stack.prefix(2)
        if let known, exact.allSatisfy(known.covers) || known.refreshes >= Self.maximumModuleRefreshes {
            return (try? view.threadID(ofTask: current)) ?? 0
        }
        guard let task = try? view.task(at: current) else { return 0 }
        let modules = (try? view.mappings(ofMM: task.mm)) ?? []
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
    }
}

/// What the identifier keeps per address space to avoid re-reading the guest on every trap: the
/// address ranges of its file mappings (refreshed when a return address falls outside them).
struct SpaceInfo: Sendable, Codable {
    var ranges: [Range<UInt64>]
    var refreshes = 0

    func covers(_ pc: UInt64) -> Bool { ranges.contains { $0.contains(pc) } }
}
