extension KernelView {
    /// `SIGNAL_GROUP_EXIT` in `signal_struct.flags` (Linux 6.1): the whole thread group is exiting
    /// (`exit_group`, or a fatal signal).
    static let signalGroupExit: UInt64 = 0x4

    /// Whether `task` dies as part of its thread group's exit, not on its own (`pthread_exit`); false
    /// when the kernel's BTF does not say where the flags are.
    public func isInGroupExit(_ task: GuestTask) throws(IntrospectionError) -> Bool {
        guard let signal = kernel.layout.task.signal, let flags = kernel.layout.task.signalFlags else { return false }
        let signalStruct = try kernelPointer(try member(task.address, signal, "task_struct.signal"), "task_struct.signal")
        let value = UInt64(try u32(try member(signalStruct, flags, "signal_struct.flags"), "signal_struct.flags"))
        return value & Self.signalGroupExit != 0
    }
}
