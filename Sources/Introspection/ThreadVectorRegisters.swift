import X86

extension KernelView {
    /// x86 `TIF_NEED_FPU_LOAD` (6.1): the task's FPU state is in its `fpstate`, not in the CPU's registers.
    static let needFPULoadBit: UInt64 = 1 << 14

    /// The words of a user thread's vector registers (xmm0–15 and the ymm upper halves in use):
    /// the vCPU's, when the thread is on a vCPU and its state is still in the registers (read at
    /// pauses; empty when the vCPU's were not read); else what the kernel saved in the task's
    /// `fpstate`. Empty when the kernel's BTF has no `struct fpstate`.
    public func vectorRegisterWords(of task: GuestTask, current: [Int: UInt64]) throws(IntrospectionError) -> [UInt64] {
        guard let layout = kernel.layout.fpuState else { return [] }
        let flags = try u64(try member(task.address, layout.threadInfoFlags, "task_struct.thread_info.flags"),
                            "task_struct.thread_info.flags")
        if let cpu = vcpus.first(where: { current[$0.index] == task.address }),
           cpu.privilegeLevel == 3 || flags & Self.needFPULoadBit == 0 {
            return cpu.vectorRegisters
        }
        let fpstate = try kernelPointer(try member(task.address, layout.taskPointer, "task_struct.thread.fpu.fpstate"),
                                        "task_struct.thread.fpu.fpstate")
        let size = try u32(try member(fpstate, layout.size, "fpstate.size"), "fpstate.size")
        // xmm and the AVX component lie in the first 832 bytes; a smaller buffer is read as far as it goes.
        let count = Int(min(size, 832))
        let area = try bytes(try member(fpstate, layout.regs, "fpstate.regs"), count, "fpstate.regs")
        return XSAVEArea.vectorRegisterWords(area)
    }
}
