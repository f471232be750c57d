/// What `leakvisor attach` found of the blocks allocated before it, over all processes.
public struct PreexistingHeapSummary: Sendable, Codable, Equatable {
    /// Processes whose main heap was walked to its top chunk.
    public var heapsWalked = 0
    /// Blocks put into the ledger as allocated before attach, and their usable bytes.
    public var blocks = 0
    public var bytes: UInt64 = 0
    /// Of `blocks`, chunks mmapped on their own.
    public var mmappedBlocks = 0
    /// Chunks that looked in use but sat in a tcache bin or a fastbin (free: left out).
    public var cachedFreeChunks = 0
    /// Processes whose main arena was found (its fastbins could be read).
    public var arenasFound = 0
    /// Per process: what could not be walked, and why.
    public var notes: [String] = []

    public init() {}
}
