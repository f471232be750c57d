/// Something wrong the ledger saw a process do with its heap.
public struct LedgerFinding: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// A block freed twice (the second release of an address with no allocation in between).
        case doubleFree = "double free"
        /// A release of an address the ledger never saw allocated while tracking the process
        /// from its start.
        case unknownFree = "free of an unknown address"
        /// A block released by a deallocator of another family (`new[]` freed by `delete`, ...).
        case mismatchedRelease = "mismatched deallocation"
        /// An allocator result the ledger refused: its end wraps around or lies past user space
        /// (a forged or corrupt return value; no real allocator gives one).
        case implausibleBlock = "implausible allocation result"
    }
    public var kind: Kind
    public var address: UInt64
    /// The function that released the block (for an implausible block: the allocator that returned it).
    public var releasedBy: AllocatorFunction
    /// For mismatches: the function that allocated the block.
    public var allocatedBy: AllocatorFunction?
    public var thread: Int32
    public var time: UInt64
    /// Index into the ledger's stacks.
    public var stack: UInt32
    /// For implausible blocks: the size the allocator was asked for.
    public var size: UInt64? = nil
}
