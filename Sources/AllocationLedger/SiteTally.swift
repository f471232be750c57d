/// A scan's verdicts given as what changed since the scanner's previous scan of the space (at
/// `baseTime`): each address whose verdict differs, with its new verdict or nil (none any more).
/// Lets the ledger's per-site bookkeeping cost what changed; never saved.
public struct VerdictChanges: Sendable {
    public var baseTime: UInt64
    public var changes: [(address: UInt64, verdict: BlockVerdict?)]

    public init(baseTime: UInt64, changes: [(address: UInt64, verdict: BlockVerdict?)]) {
        self.baseTime = baseTime
        self.changes = changes
    }
}

/// Per allocation site, the live blocks the last complete scan found referenced (its verdict
/// applies to them and is not a leak), their bytes, and how many were stale at that scan: the
/// samples of the site history, kept up to date by the scans' verdict changes and the releases
/// instead of counted over every live block at each scan.
struct SiteTally: Sendable {
    struct Entry: Sendable {
        var stack: UInt32
        var size: UInt64
        var lastWritten: UInt64
        var stale: Bool
    }

    struct Totals: Sendable, Equatable {
        var blocks = 0
        /// Exact (sizes come from the guest); a sample saturates it.
        var bytes: UInt128 = 0
        var staleBlocks = 0

        mutating func add(_ size: UInt64, stale: Bool) {
            blocks += 1
            bytes += UInt128(size)
            if stale { staleBlocks += 1 }
        }
    }

    /// The scan the tally reflects, and the threshold its staleness used.
    private(set) var scanTime: UInt64
    let staleAfter: UInt64
    private var referenced: [UInt64: Entry] = [:]
    private(set) var sites: [UInt32: Totals] = [:]
    /// Referenced blocks not yet stale, by last write (a min-heap; entries a later change made
    /// obsolete stay until they surface, and are skipped then).
    private var fresh = MinHeap()
    /// Scans brought in by their changes since the tally was counted from every block.
    private(set) var scansApplied = 0

    /// The tally of `scan` over `blocks`, counted from every block.
    init(scan: SpaceScan, blocks: [UInt64: LiveBlock], staleAfter: UInt64) {
        scanTime = scan.time
        self.staleAfter = staleAfter
        referenced.reserveCapacity(blocks.count)
        var notStale: [(key: UInt64, address: UInt64)] = []
        for (address, block) in blocks {
            guard let verdict = scan.verdict(of: address, block), !verdict.reachability.isLeak else { continue }
            let stale = Self.isStale(verdict.lastWritten, at: scan.time, after: staleAfter)
            referenced[address] = Entry(stack: block.stack, size: block.size, lastWritten: verdict.lastWritten, stale: stale)
            sites[block.stack, default: Totals()].add(block.size, stale: stale)
            if !stale { notStale.append((verdict.lastWritten, address)) }
        }
        fresh = MinHeap(notStale)
    }

    /// Not written for `staleAfter` at `time` (a write after `time` is not stale).
    static func isStale(_ written: UInt64, at time: UInt64, after staleAfter: UInt64) -> Bool {
        written <= time && time - written >= staleAfter
    }

    /// Brings the tally from the scan it reflects to `scan`, given as changes against it.
    mutating func apply(_ changes: VerdictChanges, of scan: SpaceScan, blocks: [UInt64: LiveBlock]) {
        precondition(changes.baseTime == scanTime)
        for (address, verdict) in changes.changes {
            remove(address)
            guard let verdict, !verdict.reachability.isLeak, let block = blocks[address], block.time <= scan.time else { continue }
            add(address, Entry(stack: block.stack, size: block.size, lastWritten: verdict.lastWritten, stale: false))
        }
        scanTime = scan.time
        scansApplied += 1
        ageTo(scan.time)
        if fresh.count > 2 * referenced.count + 1024 { compact() }
    }

    /// A block left the space (released, or replaced by one the allocator handed out again).
    mutating func remove(_ address: UInt64) {
        guard let entry = referenced.removeValue(forKey: address) else { return }
        var totals = sites[entry.stack] ?? Totals()
        totals.blocks -= 1
        totals.bytes -= UInt128(entry.size)
        if entry.stale { totals.staleBlocks -= 1 }
        sites[entry.stack] = totals.blocks == 0 ? nil : totals
    }

    private mutating func add(_ address: UInt64, _ entry: Entry) {
        referenced[address] = entry
        sites[entry.stack, default: Totals()].add(entry.size, stale: false)
        fresh.push(entry.lastWritten, address)
    }

    /// Marks stale every referenced block not written for `staleAfter` at `time`.
    private mutating func ageTo(_ time: UInt64) {
        while let (written, address) = fresh.min, Self.isStale(written, at: time, after: staleAfter) {
            fresh.popMin()
            guard var entry = referenced[address], !entry.stale, entry.lastWritten == written else { continue }
            entry.stale = true
            referenced[address] = entry
            sites[entry.stack, default: Totals()].staleBlocks += 1
        }
    }

    /// Drops the heap's obsolete entries.
    private mutating func compact() {
        fresh = MinHeap()
        for (address, entry) in referenced where !entry.stale { fresh.push(entry.lastWritten, address) }
    }
}

/// A binary min-heap of (key, address) pairs.
struct MinHeap: Sendable {
    private var items: [(key: UInt64, address: UInt64)] = []

    init() {}

    /// A heap of `items`, ordered in place (linear time).
    init(_ items: [(key: UInt64, address: UInt64)]) {
        self.items = items
        for i in stride(from: items.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
    }

    var count: Int { items.count }
    var min: (UInt64, UInt64)? { items.first.map { ($0.key, $0.address) } }

    mutating func push(_ key: UInt64, _ address: UInt64) {
        items.append((key, address))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].key < items[parent].key else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func popMin() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        siftDown(0)
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let (l, r) = (2 * i + 1, 2 * i + 2)
            var smallest = i
            if l < items.count, items[l].key < items[smallest].key { smallest = l }
            if r < items.count, items[r].key < items[smallest].key { smallest = r }
            guard smallest != i else { return }
            items.swapAt(i, smallest)
            i = smallest
        }
    }
}

/// Holds a space's `SiteTally` without saving it: a saved ledger comes back without one, and the
/// next complete scan counts it again.
struct SiteTallySlot: Sendable, Codable {
    var tally: SiteTally?

    init(_ tally: SiteTally) { self.tally = tally }

    init(from decoder: any Decoder) throws { tally = nil }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encodeNil()
    }
}
