import X86

extension KernelView {
    /// The kernel code addresses of a vCPU stopped in kernel mode: `registers.rip`, then the
    /// return addresses unwound with the kernel's ORC tables within the kernel stack of `task`
    /// (the vCPU's `current`); only `rip` when the stack pointer is on another stack (an
    /// interrupt's) or the kernel has no ORC.
    public func kernelReturnAddresses(registers: GeneralRegisters, task: UInt64, limit: Int) throws(IntrospectionError) -> [UInt64] {
        guard let orc = kernel.orc else { return [registers.rip] }
        let stack = try u64(try member(task, kernel.layout.task.stack, "task_struct.stack"), "task_struct.stack")
        let running = GuestTask(address: task, pid: 0, tgid: 0, parentTGID: 0, name: "", state: "R", flags: 0, mm: 0, stack: stack)
        return try KernelStackUnwinder(view: self, orc: orc).unwind(running, running: registers, limit: limit)
    }
}
