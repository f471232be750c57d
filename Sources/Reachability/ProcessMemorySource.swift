import GuestMemory
import Introspection
import X86

/// Candidate words of one process's virtual memory, through its page tables and the frame cache.
///
/// Only user space is read: the part of a range past `UserSpace.end` is refused (counted, never
/// walked), so the non-canonical hole and the kernel half cost nothing. Translations are walked
/// once per page per scan, a huge page once for all its 4 KiB pages, and a missing entry at any
/// level skips everything it would have mapped in one step (512 GiB, 1 GiB or 2 MiB). Each step
/// checks the scan's budget (a deadline and a memory limit); when it runs out the source stops
/// serving words and the scan is incomplete.
public struct ProcessMemorySource: CandidateSource {
    let space: AddressSpace
    let cache: FrameCandidateCache
    public let budget: ScanBudget
    /// 4 KiB page → frame (nil: not present) and the page-table frame holding its entry, for this scan.
    private var smallPages: [UInt64: (frame: UInt64?, table: UInt64)] = [:]
    /// Huge page base → its first frame, size (2 MiB or 1 GiB) and the table holding its entry, for this scan.
    private var hugePages: [UInt64: (frame: UInt64, size: UInt64, table: UInt64)] = [:]
    /// The last 4 KiB page's candidate words and mapping asked for (neighbouring blocks share pages).
    private var lastWords: (page: UInt64, words: [UInt64])?
    private var lastMapping: (page: UInt64, frame: UInt64?, table: UInt64)?
    /// Page-table frames above the leaf entries that this scan's walks read.
    public private(set) var upperTables: Set<UInt64> = []
    /// Virtual page → its frame and candidate words, once this scan has fetched them.
    private var pageWords: [UInt64: (frame: UInt64, words: [UInt64])] = [:]
    /// Page steps taken: a present page, or a run of absent ones skipped at once.
    public private(set) var pagesVisited = 0
    /// Why the source stopped early (nil: it did not).
    public private(set) var stop: ScanStop?
    /// Pages (or table entries) that are mapped but could not be read: words there were not seen.
    public private(set) var unreadablePages = 0
    /// Bytes of requested ranges outside user space, refused.
    public private(set) var refusedBytes: UInt64 = 0
    public private(set) var bytesScanned: UInt64 = 0

    /// Estimated bytes per entry of the scan's maps (key, value and the dictionary's slack).
    static let mapEntryBytes: UInt64 = 64

    public init(space: AddressSpace, cache: FrameCandidateCache, budget: ScanBudget = ScanBudget()) {
        self.space = space
        self.cache = cache
        self.budget = budget
    }

    public var isIncomplete: Bool { stop != nil || unreadablePages > 0 }

    /// Bytes the scanner holds besides the frame cache (kept references), counted against the budget.
    public var heldElsewhere: UInt64 = 0

    /// Memory the scan holds: the frame cache's words, what is held elsewhere and this scan's own maps.
    public var memoryInUse: UInt64 {
        let entries = UInt64(smallPages.count + hugePages.count + pageWords.count)
        return cache.storedBytes.addingSaturated(heldElsewhere).addingSaturated(entries &* Self.mapEntryBytes)
    }

    /// Whether the scan may take another step; records why not.
    mutating func mayContinue() -> Bool {
        guard stop == nil else { return false }
        if let deadline = budget.deadline, budget.clock() >= deadline {
            stop = .timeLimit
        } else if memoryInUse > budget.memoryBytes {
            stop = .memoryLimit
        }
        return stop == nil
    }

    /// The frame behind a user page (below `UserSpace.end`), or nil when there is none; `skip` is
    /// how far the caller may move on: past everything a missing table entry would have mapped.
    mutating func frame(ofPage page: UInt64) -> (frame: UInt64?, skip: UInt64) {
        let mapped = mapping(ofPage: page)
        return (mapped.frame, mapped.skip)
    }

    /// `frame(ofPage:)`, with the page-table frame that holds the page's entry (or the entry found
    /// not present); nil when a table could not be read.
    mutating func mapping(ofPage page: UInt64) -> (frame: UInt64?, table: UInt64?, skip: UInt64) {
        if let last = lastMapping, last.page == page { return (last.frame, last.table, 4096) }
        if let known = smallPages[page] {
            lastMapping = (page, known.frame, known.table)
            return (known.frame, known.table, 4096)
        }
        for size in [PageSize.twoMiB.bytes, PageSize.oneGiB.bytes] {
            if let huge = hugePages[page & ~(size - 1)], page & ~(huge.size - 1) == page & ~(size - 1) {
                return (huge.frame &+ ((page & (huge.size - 1)) >> 12), huge.table, 4096)
            }
        }
        // The walk's last table holds the page's entry; the ones above it are kept for the space.
        var leaf: UInt64 = 0
        var upper: [UInt64] = []
        var walked = 0
        defer { upperTables.formUnion(upper) }
        do {
            let t = try space.walker.translate(GuestVirtualAddress(page)) { table in
                if walked > 0, !upperTables.contains(leaf) { upper.append(leaf) }
                leaf = table
                walked += 1
            }
            let frame = t.physicalAddress.rawValue >> 12
            let size = t.pageSize.bytes
            if size > 4096 {
                hugePages[page & ~(size - 1)] = (frame &- ((page & (size - 1)) >> 12), size, leaf)
            } else {
                smallPages[page] = (frame, leaf)
            }
            return (frame, leaf, 4096)
        } catch {
            switch error {
            case .notPresent(_, let level, _):
                smallPages[page] = (nil, leaf)
                return (nil, leaf, Self.remainder(of: page, entryLevel: level))
            case .tableOutsideMemory(_, let level, _, _), .reservedPageSize(_, let level, _):
                unreadablePages += 1
                return (nil, nil, Self.remainder(of: page, entryLevel: level))
            case .rootOutsideMemory:
                unreadablePages += 1
                return (nil, nil, UserSpace.end)
            case .nonCanonical:
                return (nil, nil, UserSpace.end)
            }
        }
    }

    /// Bytes from `page` to the end of what one entry at `entryLevel` (1 = PT ... 5 = PML5) maps.
    static func remainder(of page: UInt64, entryLevel: Int) -> UInt64 {
        let span: UInt64 = 4096 << (9 * UInt64(min(max(entryLevel, 1), 5) - 1))
        return span - (page & (span - 1))
    }

    /// The candidate words of a user page, or nil when it has none; and how far to move on.
    mutating func words(ofPage page: UInt64) -> (words: [UInt64]?, skip: UInt64) {
        // Neighbouring blocks share pages: the last page asked for is kept at hand.
        if let last = lastWords, last.page == page { return (last.words, 4096) }
        if let known = pageWords[page] {
            lastWords = (page, known.words)
            return (known.words, 4096)
        }
        let (frame, skip) = frame(ofPage: page)
        guard let frame else { return (nil, skip) }
        do {
            let read = try cache.candidates(frame: frame, memory: space.memory)
            pageWords[page] = (frame, read)
            lastWords = (page, read)
            return (read, 4096)
        } catch {
            unreadablePages += 1
            return (nil, 4096)
        }
    }

    /// Frames whose words this scan used.
    public var touchedFrames: [UInt64] { pageWords.values.map(\.frame) }

    public mutating func forEachCandidate(in requested: Range<UInt64>, _ body: (UInt64) -> Void) {
        let range = UserSpace.clip(requested)
        refusedBytes = refusedBytes.addingSaturated(requested.length &- range.length)
        // Below UserSpace.end (< 2^47) nothing here can overflow.
        var page = range.lowerBound & ~0xFFF
        while page < range.upperBound {
            guard mayContinue() else { return }
            pagesVisited += 1
            let (found, skip) = words(ofPage: page)
            defer { page += skip }
            guard let words = found else { continue }
            let low = max(range.lowerBound, page), high = min(range.upperBound, page + 4096)
            bytesScanned = bytesScanned.addingSaturated(high - low)
            // The slots wholly inside [low, high).
            let first = (low - page + 7) / 8, end = (high - page) / 8
            if first < end { cache.forEachValue(of: words, slots: first..<end, body) }
        }
    }

    /// The word at a user address (8-byte aligned, in user space), read from guest memory now; nil
    /// when it is unaligned, outside user space, not present or unreadable, or the budget ran out.
    public mutating func word(at address: UInt64) -> UInt64? {
        guard address & 7 == 0, UserSpace.contains(start: address, size: 8), mayContinue() else { return nil }
        guard let frame = frame(ofPage: address & ~0xFFF).frame else { return nil }
        return try? space.memory.load(UInt64.self, at: GuestPhysicalAddress(frame << 12 | (address & 0xFFF)))
    }

    public mutating func dependencies(of requested: Range<UInt64>) -> [UInt64]? {
        let range = UserSpace.clip(requested)
        guard range.length == requested.length else { return nil }
        var result: [UInt64] = []
        var page = range.lowerBound & ~0xFFF
        while page < range.upperBound {
            guard mayContinue() else { return nil }
            let mapped = mapping(ofPage: page)
            guard let table = mapped.table else { return nil }
            result.append(mapped.frame ?? BlockReferences.notPresent)
            result.append(table)
            page += 4096
        }
        return result
    }

    public mutating func facts(of range: Range<UInt64>, heuristics: LeakCheckHeuristics, vtables: Bool) -> BlockFacts? {
        guard !heuristics.enabled.isEmpty else { return nil }
        let size = range.length
        var facts = BlockFacts(first: size >= 8 ? word(at: range.lowerBound) : nil,
                               second: size >= 16 ? word(at: range.lowerBound &+ 8) : nil)
        if vtables, heuristics.enabled.contains(.multipleInheritance) {
            forEachCandidateSlot(in: range) { address, value in
                if heuristics.isVirtualTable(value) { facts.vtableSlots += [address - range.lowerBound, value] }
            }
        }
        return isIncomplete ? nil : facts
    }

    /// `forEachCandidate`, with each word's address.
    mutating func forEachCandidateSlot(in requested: Range<UInt64>, _ body: (UInt64, UInt64) -> Void) {
        let range = UserSpace.clip(requested)
        var page = range.lowerBound & ~0xFFF
        while page < range.upperBound {
            guard mayContinue() else { return }
            let (found, skip) = words(ofPage: page)
            defer { page += skip }
            guard let words = found else { continue }
            let low = max(range.lowerBound, page), high = min(range.upperBound, page + 4096)
            let first = (low - page + 7) / 8, end = (high - page) / 8
            if first < end { cache.forEachSlotValue(of: words, slots: first..<end) { body(page + 8 * $0, $1) } }
        }
    }

    /// Frames of the present pages a range spans, or nil if the budget ran out before all were found.
    public mutating func frames(of requested: Range<UInt64>) -> [UInt64]? {
        let range = UserSpace.clip(requested)
        var result: [UInt64] = []
        var page = range.lowerBound & ~0xFFF
        while page < range.upperBound {
            guard mayContinue() else { return nil }
            pagesVisited += 1
            let (frame, skip) = frame(ofPage: page)
            if let frame { result.append(frame) }
            page += skip
        }
        return result
    }
}
