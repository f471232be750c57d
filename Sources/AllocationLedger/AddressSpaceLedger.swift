import X86
import Introspection
import Reachability

/// The ledger of one guest address space (one process image between exec and exit).
public struct AddressSpaceLedger: Sendable, Codable {
    /// Page-table root (CR3 without flag bits) that identified the space while it was live.
    public let pageTableRoot: PageTableRoot
    public var identity: ProcessIdentity?
    /// File mappings of the process (for symbolizing its stacks after it is gone).
    public var modules: [GuestMapping] = []
    public internal(set) var blocks: [UInt64: LiveBlock] = [:]
    public internal(set) var findings: [LedgerFinding] = []
    public internal(set) var end: AddressSpaceEnd = .live
    public internal(set) var endTime: UInt64?
    public internal(set) var counters = Counters()
    /// The latest reachability scan, and per allocation stack its referenced blocks at each scan
    /// (the last `siteHistoryLength` scans), for growth detection.
    public internal(set) var lastScan: SpaceScan?
    public internal(set) var siteHistory: [UInt32: [SiteSample]] = [:]
    /// The site history's next sample, kept up to date between scans (not saved: counted again
    /// from the blocks at the next complete scan).
    var siteTally: SiteTallySlot?
    static let siteHistoryLength = 32
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
        /// Allocator results refused as implausible (see `LedgerFinding.Kind.implausibleBlock`).
        public var refusedBlocks = 0
    }
    /// Live bytes without overflow (sizes come from the guest): `counters.liveBytes` saturates it.
    private var liveBytesExact: UInt128 = 0

    static let releasedMemory = 4096

    init(pageTableRoot: PageTableRoot) {
        self.pageTableRoot = pageTableRoot
    }

    mutating func insert(_ address: UInt64, _ block: LiveBlock) {
        if let old = blocks.updateValue(block, forKey: address) {
            siteTally?.tally?.remove(address)
            // The allocator handed out an address we think is live: we missed its release.
            liveBytesExact -= min(liveBytesExact, UInt128(old.size))
        }
        forgetRelease(address)
        counters.allocations += 1
        counters.bytesAllocated = counters.bytesAllocated.addingSaturated(block.size)
        liveBytesExact += UInt128(block.size)
        counters.liveBytes = UInt64(clamping: liveBytesExact)
        counters.peakLiveBytes = max(counters.peakLiveBytes, counters.liveBytes)
    }

    /// Removes a live block; nil if the address is not live.
    mutating func remove(_ address: UInt64, stack: UInt32) -> LiveBlock? {
        guard let block = blocks.removeValue(forKey: address) else { return nil }
        siteTally?.tally?.remove(address)
        counters.releases += 1
        liveBytesExact -= min(liveBytesExact, UInt128(block.size))
        counters.liveBytes = UInt64(clamping: liveBytesExact)
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

    /// Keeps a scan's verdicts and adds a sample per allocation site of its referenced blocks:
    /// counted from the changes when the scan gives them against the scan the tally reflects,
    /// else from every live block.
    mutating func record(_ scan: SpaceScan, staleAfter: UInt64) {
        var scan = scan
        let changes = scan.verdictChanges
        scan.verdictChanges = nil
        if !scan.complete, let previous = lastScan { scan = Self.keepingLeaks(of: previous, in: scan, blocks: blocks) }
        lastScan = scan
        // Taken out, so that it is changed in place (not copied).
        var tally = siteTally?.tally
        siteTally = nil
        // An incomplete scan left blocks unclassified: its referenced counts would fake a shrink.
        guard scan.complete else { return }
        // No binding may hold the tally while it changes (it would be copied).
        let fits = tally.map { $0.staleAfter == staleAfter && changes?.baseTime == $0.scanTime } ?? false
        if fits, let changes {
            tally!.apply(changes, of: scan, blocks: blocks)
        } else {
            tally = SiteTally(scan: scan, blocks: blocks, staleAfter: staleAfter)
        }
        guard let tally else { return }
        siteTally = SiteTallySlot(tally)
        var samples: [UInt32: SiteSample] = [:]
        for (stack, totals) in tally.sites {
            samples[stack] = SiteSample(time: scan.time, blocks: totals.blocks, bytes: UInt64(clamping: totals.bytes),
                                        staleBlocks: totals.staleBlocks)
        }
        for (stack, var history) in siteHistory where samples[stack] == nil {
            history.append(SiteSample(time: scan.time, blocks: 0, bytes: 0, staleBlocks: 0))
            siteHistory[stack] = Array(history.suffix(Self.siteHistoryLength))
        }
        for (stack, sample) in samples {
            siteHistory[stack] = Array((siteHistory[stack, default: []] + [sample]).suffix(Self.siteHistoryLength))
        }
    }

    /// An incomplete scan proves nothing about the blocks it did not classify, but a leak an
    /// earlier complete scan proved stays a leak (nothing points to it, so nothing can again):
    /// such blocks keep that verdict, if they were already allocated at that scan.
    static func keepingLeaks(of previous: SpaceScan, in scan: SpaceScan, blocks: [UInt64: LiveBlock]) -> SpaceScan {
        var scan = scan
        var kept = 0
        for (address, verdict) in previous.verdicts where verdict.reachability == .directLeak || verdict.reachability == .indirectLeak {
            guard scan.verdicts[address] == nil, let block = blocks[address], block.time <= previous.time else { continue }
            scan.verdicts[address] = verdict
            kept += 1
        }
        if kept > 0 {
            scan.notes.append("\(kept) block(s) keep the leak class an earlier complete scan proved")
        }
        return scan
    }

    mutating func close(_ end: AddressSpaceEnd, at time: UInt64) {
        self.end = end
        endTime = time
        released = [:]
        releasedOrder = []
    }
}
