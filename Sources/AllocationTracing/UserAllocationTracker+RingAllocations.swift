import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import X86

extension UserAllocationTracker {
    /// An allocation's entry record: decided by the call tracker as a trapped entry is (a call
    /// made inside another tracked call is nested), and, when it is the thread's outermost call,
    /// its process named, its stack walked from the record's copy and the call left in flight
    /// until its exit record.
    func recordAllocationEntry(_ stub: ExitlessPath.Stub, record: RingRecord, arguments: [UInt64], framePointer: UInt64,
                               stack: [UInt8], site: UInt64, root: PageTableRoot, kernel: inout RingKernelContext, time: UInt64) {
        guard arguments.count == 3 else { return }
        var registers = GeneralRegisters()
        (registers.rdi, registers.rsi, registers.rdx) = (arguments[0], arguments[1], arguments[2])
        let who = kernel.thread(root: root, threadPointer: record.threadPointer)
        var entry = CallEntry(function: stub.function, arguments: CallArguments(stub.site.entryPoint.convention, registers: registers),
                              thread: ThreadKey(root: root, fsBase: record.threadPointer, task: who.exact ? who.task : 0),
                              rsp: record.stackPointer, returnAddress: record.returnAddress, site: site)
        // A ring record is drained after the fact: an outer call in flight is taken as still in
        // flight (its slot cannot be read as it was then).
        let decision = calls.withLock { $0.enter(entry, outerSlotWord: CallTracker.trampoline) }
        guard case .redirect = decision else {
            counters.withLock { $0.ringNestedEntries += 1 }
            if Self.tracing { Self.trace("ring enter \(stub.function.rawValue) cr3=\(hex(root.rawValue)) rsp=\(hex(entry.rsp)) → \(decision)") }
            return
        }
        var thread: Int32 = 0
        if let view = kernel.view, who.task != 0 {
            let tid = identifier.identify(view: view, current: who.task, root: root, stack: [site, entry.returnAddress])
            thread = who.exact ? tid : 0
        }
        let walkStarted = clock.now
        let copy = StackCopy(start: entry.rsp, bytes: stack)
        let (walked, found) = identifier.captureStack(site: site, returnAddress: entry.returnAddress, framePointer: framePointer,
                                                      stackPointer: entry.rsp, root: root, extraFrames: 1, read: copy.word)
        let frames = namedByCallSite(&entry, frames: walked, root: root)
        countWalk(found, started: walkStarted, ended: clock.now)
        guard calls.withLock({ $0.enteredFromRing(entry, context: CallContext(stack: frames, thread: thread, time: time)) }) else {
            counters.withLock { $0.ringRecordsDropped += 1 }
            return
        }
        if Self.tracing {
            Self.trace("ring enter \(stub.function.rawValue) cr3=\(hex(root.rawValue)) fs=\(hex(record.threadPointer)) rsp=\(hex(entry.rsp)) ret=\(hex(entry.returnAddress)) rdi=\(hex(arguments[0])) frames=\(frames.count) copied=\(stack.count)")
        }
    }
}

extension UserAllocationTracker {
    /// An allocation whose caller lies in an unarmed wrapper (`CallSiteWrappers`: libstdc++'s
    /// `operator new` calling `malloc`) becomes the wrapper's call: its function, its entry as
    /// frame 0 and the wrapper's own frame dropped. `frames` was walked one frame deeper than
    /// kept; the stack returned has the kept depth.
    func namedByCallSite(_ entry: inout CallEntry, frames: [UInt64], root: PageTableRoot) -> [UInt64] {
        let depth = identifier.stackDepth.load(ordering: .relaxed)
        guard entry.function == .malloc, frames.count >= 2,
              let location = identifier.unwind.location(of: frames[1], in: root),
              let wrapper = patcher.callSiteWrappers.withLock({ $0.wrapper(in: location.hostPath, at: location.fileOffset) })
        else { return Array(frames.prefix(depth)) }
        entry.function = wrapper.function
        let wrapperEntry = frames[1] &- (location.fileOffset &- wrapper.entry)
        return Array(([wrapperEntry] + frames.dropFirst(2)).prefix(depth))
    }
}

/// The bytes of a thread's stack an entry record copied, from `start` up: a stack walk reads
/// its words from here (nothing outside the copy: the stack has changed since).
struct StackCopy: Sendable {
    let start: UInt64
    let bytes: [UInt8]

    func word(_ address: UInt64) -> UInt64? {
        guard address >= start, address &- start <= UInt64(bytes.count), address &- start + 8 <= UInt64(bytes.count) else { return nil }
        let offset = Int(address - start)
        var value: UInt64 = 0
        for k in 0..<8 { value |= UInt64(bytes[offset + k]) << (8 * k) }
        return value
    }
}

/// What a drain needs of the guest kernel to name the thread behind a ring record: a view built
/// on first need (from the vCPU state of the tracker's last trap), and the task of a thread
/// pointer in an address space (noted at traps, else found among the tasks).
struct RingKernelContext {
    let tracker: UserAllocationTracker
    let memory: GuestMemory
    private var built = false
    private var madeView: KernelView?
    private var tasks: [GuestTask]?
    private var threadIDs: [ThreadKey: Int32] = [:]

    init(tracker: UserAllocationTracker, memory: GuestMemory) {
        self.tracker = tracker
        self.memory = memory
    }

    var view: KernelView? {
        mutating get {
            if !built {
                built = true
                if let state = tracker.lastUserState.withLock({ $0 }) {
                    madeView = try? KernelView(kernel: tracker.patcher.kernel, memory: memory, vcpus: [state])
                }
            }
            return madeView
        }
    }

    /// The guest thread id of the thread with `threadPointer` in `root` (0 when not known).
    mutating func threadID(root: PageTableRoot, threadPointer: UInt64) -> Int32 {
        let key = ThreadKey(root: root, fsBase: threadPointer)
        if let known = threadIDs[key] { return known }
        let who = thread(root: root, threadPointer: threadPointer)
        let tid = who.exact ? (view.flatMap { try? $0.threadID(ofTask: who.task) } ?? 0) : 0
        threadIDs[key] = tid
        return tid
    }

    /// The task of the thread with `threadPointer` in `root` (`exact`), else any task of that
    /// process (to name it), else 0.
    mutating func thread(root: PageTableRoot, threadPointer: UInt64) -> (task: UInt64, exact: Bool) {
        guard let exitless = tracker.patcher.exitless else { return (0, false) }
        let noted = exitless.task(root: root, threadPointer: threadPointer)
        if noted != 0 { return (noted, true) }
        guard let view else { return (0, false) }
        if tasks == nil { tasks = (try? view.tasks()) ?? [] }
        var any: UInt64 = 0
        for task in tasks ?? [] where task.mm != 0 && !task.isKernelThread {
            guard (try? view.pageTableRoot(ofMM: task.mm)) == root else { continue }
            if any == 0 { any = task.address }
            if (try? view.fsBase(of: task, current: [:])) == threadPointer {
                exitless.noteTask(task.address, root: root, threadPointer: threadPointer)
                return (task.address, true)
            }
        }
        return (any, false)
    }
}
