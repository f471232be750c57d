import X86
/// One guest task (thread) read from its `task_struct`.
public struct GuestTask: Sendable, Equatable {
    public let address: UInt64
    public let pid: Int32
    public let tgid: Int32
    public let parentTGID: Int32
    public let name: String
    public let state: Character
    public let flags: UInt32
    public let mm: UInt64
    public let stack: UInt64

    /// PF_KTHREAD.
    public var isKernelThread: Bool { flags & 0x0020_0000 != 0 }
}

extension KernelView {
    static let maximumTasks = 65_536

    /// Every task in the guest: the `init_task.tasks` ring of thread-group leaders and each
    /// leader's `thread_group` ring. Loops and runaway lists end in a typed error.
    public func tasks() throws(IntrospectionError) -> [GuestTask] {
        let t = kernel.layout.task
        let initTask = try symbol("init_task").rawValue
        var leaders: [UInt64] = []
        var seen: Set<UInt64> = [initTask]
        let listHead = try member(initTask, t.tasks, "init_task.tasks")
        var link = try kernelPointer(listHead, "init_task.tasks.next")
        while link != listHead {
            let task = link &- UInt64(t.tasks)
            guard seen.insert(task).inserted, leaders.count < Self.maximumTasks else {
                throw .inconsistent("the task list loops or exceeds \(Self.maximumTasks) entries")
            }
            leaders.append(task)
            link = try kernelPointer(link, "task_struct.tasks.next")
        }
        var all: [GuestTask] = []
        for leader in leaders {
            all.append(try task(at: leader))
            let head = try member(leader, t.threadGroup, "task_struct.thread_group")
            var cursor = try kernelPointer(head, "task_struct.thread_group.next")
            var count = 0
            while cursor != head {
                let thread = cursor &- UInt64(t.threadGroup)
                count += 1
                guard count < Self.maximumTasks, seen.insert(thread).inserted else {
                    throw .inconsistent("a thread list loops")
                }
                all.append(try task(at: thread))
                cursor = try kernelPointer(cursor, "task_struct.thread_group.next")
            }
        }
        return all
    }

    /// Reads one `task_struct`.
    public func task(at address: UInt64) throws(IntrospectionError) -> GuestTask {
        let t = kernel.layout.task
        let commBytes = try bytes(try member(address, t.comm, "task_struct.comm"), t.commLength, "task_struct.comm")
        let name = String(decoding: commBytes.prefix { $0 != 0 }, as: UTF8.self)
        let parent = try kernelPointer(try member(address, t.realParent, "task_struct.real_parent"), "task_struct.real_parent")
        let parentTGID = Int32(bitPattern: try u32(try member(parent, t.tgid, "parent tgid"), "parent tgid"))
        let state = try u32(try member(address, t.state, "task_struct.__state"), "task_struct.__state")
        let exitState = try u32(try member(address, t.exitState, "task_struct.exit_state"), "task_struct.exit_state")
        return GuestTask(address: address,
                         pid: Int32(bitPattern: try u32(try member(address, t.pid, "task_struct.pid"), "task_struct.pid")),
                         tgid: Int32(bitPattern: try u32(try member(address, t.tgid, "task_struct.tgid"), "task_struct.tgid")),
                         parentTGID: parentTGID, name: name,
                         state: Self.stateLetter(state: state, exitState: exitState),
                         flags: try u32(try member(address, t.flags, "task_struct.flags"), "task_struct.flags"),
                         mm: try u64(try member(address, t.mm, "task_struct.mm"), "task_struct.mm"),
                         stack: try u64(try member(address, t.stack, "task_struct.stack"), "task_struct.stack"))
    }

    /// The letter `ps` shows, computed as the kernel's task_state_index() does.
    static func stateLetter(state: UInt32, exitState: UInt32) -> Character {
        let report: UInt32 = 0x7F
        var s = (state & report) | (exitState & report)
        if state == 0x402 { s = 0x80 }  // TASK_IDLE is reported as I
        let letters: [Character] = ["R", "S", "D", "T", "t", "X", "Z", "P", "I"]
        let index = s == 0 ? 0 : (32 - s.leadingZeroBitCount)
        return index < letters.count ? letters[index] : "?"
    }

    /// Processes (thread groups), PID order, without the idle task (PID 0), like `ps`.
    public func processes() throws(IntrospectionError) -> [GuestProcess] {
        let all = try tasks()
        var byGroup: [Int32: [GuestTask]] = [:]
        for task in all where task.pid != 0 { byGroup[task.tgid, default: []].append(task) }
        var result: [GuestProcess] = []
        for (tgid, threads) in byGroup {
            guard let leader = threads.first(where: { $0.pid == tgid }) else { continue }
            var arguments: [String] = []
            var root: PageTableRoot?
            if leader.mm != 0, !leader.isKernelThread {
                if let space = try? userSpace(of: leader) {
                    root = space.root
                    arguments = (try? self.arguments(of: leader, in: space)) ?? []
                }
            }
            result.append(GuestProcess(pid: tgid, parentPID: leader.parentTGID, name: leader.name,
                                       state: String(leader.state), isKernelThread: leader.isKernelThread,
                                       threadIDs: threads.map(\.pid).sorted(), arguments: arguments,
                                       pageTableRoot: root))
        }
        return result.sorted { $0.pid < $1.pid }
    }

    /// The thread-group leader with this PID, among `tasks` when the caller has listed them already.
    public func process(_ pid: Int32, among tasks: [GuestTask]? = nil) throws(IntrospectionError) -> GuestTask {
        var all = tasks ?? []
        if tasks == nil { all = try self.tasks() }
        guard let task = all.first(where: { $0.pid == pid && $0.tgid == pid }) else { throw .noSuchProcess(pid) }
        return task
    }

    /// The user address space of a task (which must have an `mm`).
    public func userSpace(of task: GuestTask) throws(IntrospectionError) -> AddressSpace {
        guard task.mm != 0 else { throw .noUserContext(pid: task.pid, why: "it is a kernel thread") }
        return try userSpace(pgd: try pageTableDirectory(ofMM: task.mm))
    }

    /// argv, read from the process's memory between `mm->arg_start` and `arg_end`.
    func arguments(of task: GuestTask, in space: AddressSpace) throws(IntrospectionError) -> [String] {
        let m = kernel.layout.mm
        let start = try u64(try member(task.mm, m.argStart, "mm_struct.arg_start"), "mm_struct.arg_start")
        let end = try u64(try member(task.mm, m.argEnd, "mm_struct.arg_end"), "mm_struct.arg_end")
        guard end > start else { return [] }
        let raw: [UInt8]
        do { raw = try space.read(GuestVirtualAddress(start), count: Int(min(end - start, 4096))) } catch {
            throw .read("arguments of PID \(task.pid)", error)
        }
        return raw.split(separator: 0, omittingEmptySubsequences: false).dropLast(raw.last == 0 ? 1 : 0)
            .map { String(decoding: $0, as: UTF8.self) }
    }
}
