import Introspection

/// What a thread gives a scan's roots: its user registers (vector registers included when they
/// could be read), its stack pointer and its thread pointer. Read from a live task, or kept from
/// the moment a thread died in its group's exit, for the scan as the address space is torn down.
public struct ThreadRootState: Sendable, Equatable {
    public var pid: Int32
    public var generalPurpose: [UInt64]
    /// nil when the thread's vector registers could not be read.
    public var vector: [UInt64]?
    public var stackPointer: UInt64
    /// The FS base (0: none).
    public var threadPointer: UInt64

    public init(pid: Int32, generalPurpose: [UInt64], vector: [UInt64]?, stackPointer: UInt64, threadPointer: UInt64) {
        self.pid = pid; self.generalPurpose = generalPurpose; self.vector = vector
        self.stackPointer = stackPointer; self.threadPointer = threadPointer
    }

    /// A user thread's state as the kernel and the vCPUs hold it now. `current` is
    /// `view.currentTasks()`.
    public static func read(_ task: GuestTask, view: KernelView, current: [Int: UInt64]) throws(IntrospectionError) -> ThreadRootState {
        let (registers, _) = try view.userRegisters(of: task, current: current)
        let vector = try? view.vectorRegisterWords(of: task, current: current)
        let fs = try view.fsBase(of: task, current: current)
        return ThreadRootState(pid: task.pid, generalPurpose: registers.generalPurpose, vector: vector,
                               stackPointer: registers.rsp, threadPointer: fs)
    }
}
