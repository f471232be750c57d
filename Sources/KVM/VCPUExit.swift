/// Why KVM_RUN returned, decoded from kvm_run. Handlers never see the raw union.
public enum VCPUExit: Sendable {
    /// Port I/O: for `in`, the handler must fill the data with `VirtualCPU.completeIn`.
    case portIO(PortAccess)
    /// Access to guest-physical memory outside every slot.
    case mmio(MMIOAccess)
    case halt
    case shutdown
    /// A guest-debug event: hardware breakpoint or single-step.
    case debug(DebugEvent)
    /// KVM could not emulate an instruction; `instructionBytes` as reported by KVM (may be empty).
    case internalError(suberror: UInt32, data: [UInt64], instructionBytes: [UInt8])
    case failEntry(reason: UInt64)
    case systemEvent(type: UInt32)
    /// KVM_RUN returned EINTR (a signal or an immediate-exit request).
    case interrupted
    case other(reason: UInt32)
}

/// One port I/O exit (possibly a string instruction with `count` > 1).
public struct PortAccess: Sendable {
    public let isWrite: Bool
    public let port: UInt16
    public let size: Int
    public let count: Int
    /// For writes: the bytes written (size * count).
    public let data: [UInt8]
}

/// One MMIO exit.
public struct MMIOAccess: Sendable {
    public let address: UInt64
    public let isWrite: Bool
    public let length: Int
    /// For writes: the bytes written.
    public let data: [UInt8]
}

/// A KVM_EXIT_DEBUG event.
public struct DebugEvent: Sendable {
    public let exception: UInt32
    public let pc: UInt64
    public let dr6: UInt64
    public let dr7: UInt64
}
