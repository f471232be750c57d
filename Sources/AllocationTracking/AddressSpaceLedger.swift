import Introspection

/// The ledger of one guest address space (one process image between exec and exit).
public struct AddressSpaceLedger: Sendable {
    /// Page-table root (CR3 without flag bits) that identified the space while it was live.
    public let pageTableRoot: UInt64
    public var identity: ProcessIdentity?
    /// File mappings of the process (for symbolizing its stacks after it is gone).
    public var modules: [GuestMapping] = []
    public internal(set) var blocks: [UInt64: LiveBlock] = [:]
    public internal(set) var findings: [LedgerFinding] = []
    public internal(set) var end: AddressSpaceEnd = .live
    public internal(set) var endTime: UInt64?
    public internal(set) var counters = Counters()
    /// Recently released addresses (for double-free findings), oldest first, bounded.
    var released: [UInt64: UInt32] = [:]
    var releasedOrder: [UInt64] = []
    var releasedHead = 0

    /// Totals over the space's life.
    public struct Counters: Sendable, Codable, Equatable {
        public var allocations = 0
        public var releases = 0
        public var bytesAllocated: UInt64 = 0
        public var liveBytes: UInt64 = 0
        public var peakLiveBytes: UInt64 = 0
        /// `free(NULL)` and friends: legal, counted, not recorded.
        public var nullReleases = 0
    }

    static let releasedMemory = 4096

    init(pageTableRoot: UInt64) {
        self.pageTableRoot = pageTableRoot
    }

    mutating func insert(_ address: UInt64, _ block: LiveBlock) {
        if let old = blocks.updateValue(block, forKey: address) {
            // The allocator handed out an address we think is live: we missed its release.
            counters.liveBytes &-= old.size
        }
        forgetRelease(address)
        counters.allocations += 1
        counters.bytesAllocated &+= block.size
        counters.liveBytes &+= block.size
        counters.peakLiveBytes = max(counters.peakLiveBytes, counters.liveBytes)
    }

    /// Removes a live block; nil if the address is not live.
    mutating func remove(_ address: UInt64, stack: UInt32) -> LiveBlock? {
        guard let block = blocks.removeValue(forKey: address) else { return nil }
        counters.releases += 1
        counters.liveBytes &-= block.size
        rememberRelease(address, stack: stack)
        return block
    }

    func wasReleased(_ address: UInt64) -> Bool { released[address] != nil }

    private mutating func rememberRelease(_ address: UInt64, stack: UInt32) {
        if releasedOrder.count < Self.releasedMemory {
            releasedOrder.append(address)
        } else {
            released[releasedOrder[releasedHead]] = nil
            releasedOrder[releasedHead] = address
            releasedHead = (releasedHead + 1) % Self.releasedMemory
        }
        released[address] = stack
    }

    private mutating func forgetRelease(_ address: UInt64) {
        released[address] = nil
    }

    mutating func record(_ finding: LedgerFinding) {
        if findings.count < 10_000 { findings.append(finding) }
    }

    mutating func close(_ end: AddressSpaceEnd, at time: UInt64) {
        self.end = end
        endTime = time
        released = [:]
        releasedOrder = []
    }
}
