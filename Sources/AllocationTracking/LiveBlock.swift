/// One outstanding allocation in the ledger (32 bytes; the address is the dictionary key and the
/// stack is an index into the ledger's interned stacks).
public struct LiveBlock: Sendable, Equatable {
    public var size: UInt64
    /// Nanoseconds since tracking started.
    public var time: UInt64
    public var stack: UInt32
    /// Guest thread id (the kernel's pid of the thread).
    public var thread: Int32
    public var function: AllocatorFunction
}
