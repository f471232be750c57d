/// One outstanding allocation in the ledger: 24 bytes (the address is the dictionary key, the
/// allocating function shares a word with the size, and the stack is an index into the ledger's
/// interned stacks).
public struct LiveBlock: Sendable, Equatable, Codable {
    private var sizeAndFunction: UInt64
    /// Nanoseconds since tracking started.
    public var time: UInt64
    public var stack: UInt32
    /// Guest thread id (the kernel's pid of the thread).
    public var thread: Int32

    /// Sizes are kept in 56 bits (64 PiB), far above any allocation a guest can make.
    public var size: UInt64 { sizeAndFunction & Self.sizeMask }

    public var function: AllocatorFunction {
        AllocatorFunction.allCases[Int(sizeAndFunction >> 56) % AllocatorFunction.allCases.count]
    }

    static let sizeMask: UInt64 = (1 << 56) - 1

    public init(size: UInt64, time: UInt64, stack: UInt32, thread: Int32, function: AllocatorFunction) {
        let index = UInt64(AllocatorFunction.allCases.firstIndex(of: function) ?? 0)
        sizeAndFunction = min(size, Self.sizeMask) | index << 56
        self.time = time
        self.stack = stack
        self.thread = thread
    }
}
