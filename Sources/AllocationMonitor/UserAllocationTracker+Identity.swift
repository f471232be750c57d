import AllocationTracking
import GuestMemory
import Introspection
import VMM

extension UserAllocationTracker {
    static let maximumFrames = 24

    /// The allocator's own address, its return address, then the caller's frame-pointer chain
    /// (bounded, increasing, inside 8 MiB of the stack). Callers built without frame pointers end
    /// the chain early; the first two frames are always exact.
    func captureStack(site: UInt64, returnAddress: UInt64, framePointer: UInt64, stackPointer: UInt64,
                      user: UserMemory) -> [UInt64] {
        var stack = [site, returnAddress]
        var frame = framePointer
        var previous = stackPointer
        while stack.count < Self.maximumFrames, frame > previous, frame &- stackPointer < 8 << 20, frame & 7 == 0,
              let words = try? user.space.readWords(at: GuestVirtualAddress(frame), count: 2) {
            let (next, pc) = (words[0], words[1])
            guard pc >= 0x1000, pc < 0x8000_0000_0000 else { break }
            stack.append(pc)
            previous = frame
            frame = next
        }
        return stack
    }

    /// The guest thread id of the trapped thread (from the kernel's `current_task`). On the first
    /// event of an address space also names its process and records its file mappings; later,
    /// refreshes the mappings when a stack frame lies outside all of them (a library loaded).
    func identify(trap: GuestTrap, root: UInt64, memory: GuestMemory, stack: [UInt64]) -> Int32 {
        guard let view = try? KernelView(kernel: kernel, memory: memory, vcpus: [trap.state]),
              let current = try? view.currentTasks()[trap.state.index],
              let task = try? view.task(at: current) else { return 0 }
        let known = ledger.modules(of: root)
        // Only the two exact frames decide: a frame-pointer chain may end in junk.
        if known == nil || !stack.prefix(2).allSatisfy({ pc in known!.contains { $0.start <= pc && pc < $0.end } }) {
            let modules = (try? view.mappings(ofMM: task.mm)) ?? []
            if known == nil {
                let leader = (try? view.process(task.tgid)) ?? task
                // The main executable is mapped first (lowest), before the heap and libraries.
                let executable = modules.first { $0.path.hasPrefix("/") }?.path
                ledger.identify(root, as: ProcessIdentity(pid: task.tgid, command: leader.name, executable: executable),
                                modules: modules)
            } else if modules != known! {
                ledger.updateModules(root, modules)
            }
        }
        return task.pid
    }
}
