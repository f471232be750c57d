/// Where a scan gets the contents of memory: every aligned 8-byte word in a virtual address
/// range that could be a pointer. Pages that are not present are skipped.
public protocol CandidateSource {
    /// Calls `body` with each candidate word value stored in `range` (8-byte aligned slots).
    mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void)
    /// Set once the source stopped serving words (its budget ran out) or failed to read some: a
    /// marking over it may have missed pointers, so only what it proved reachable is known.
    var isIncomplete: Bool { get }
    /// The whole 8-byte word at `address` (any value, not only candidates), or nil when it cannot
    /// be read: what the leak-check heuristics look at in a block.
    mutating func word(at address: UInt64) -> UInt64?
    /// What the words of `range` depend on, one pair per 4 KiB page: the guest-physical frame it
    /// maps to (`UInt64.max`: not present), then the page-table frame that holds its entry. What is
    /// derived from the range stays true until one of them is written. Nil when the source cannot
    /// say (then nothing derived from it is kept between scans).
    mutating func dependencies(of range: Range<UInt64>) -> [UInt64]?
    /// What the leak-check `heuristics` would read of the block `range`, read now (nil when the
    /// source cannot say; then interior pointers to the block are judged from memory). Its slots
    /// that may hold vtable pointers are looked for only when `vtables` (the caller knows whether
    /// any of its candidate words may be one).
    mutating func facts(of range: Range<UInt64>, heuristics: LeakCheckHeuristics, vtables: Bool) -> BlockFacts?
}

extension CandidateSource {
    public var isIncomplete: Bool { false }
    public mutating func word(at address: UInt64) -> UInt64? { nil }
    public mutating func dependencies(of range: Range<UInt64>) -> [UInt64]? { nil }
    public mutating func facts(of range: Range<UInt64>, heuristics: LeakCheckHeuristics, vtables: Bool) -> BlockFacts? { nil }
}

/// Candidate words from explicit (address, value) pairs: for tests and for register roots.
public struct WordListSource: CandidateSource {
    public var words: [UInt64: UInt64]
    /// Stop serving words after this many ranges (tests of incomplete scans); nil: never.
    public var rangeLimit: Int?
    public private(set) var rangesServed = 0

    public init(words: [UInt64: UInt64], rangeLimit: Int? = nil) {
        self.words = words
        self.rangeLimit = rangeLimit
    }

    public var isIncomplete: Bool { rangeLimit.map { rangesServed > $0 } ?? false }

    public mutating func word(at address: UInt64) -> UInt64? { words[address] }

    public mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void) {
        rangesServed += 1
        guard !isIncomplete else { return }
        if range.length / 8 > UInt64(words.count) {
            // A huge range over few words: visit the words, not the addresses.
            for address in words.keys.sorted() where address & 7 == 0 && address >= range.lowerBound {
                let (end, overflow) = address.addingReportingOverflow(8)
                if !overflow, end <= range.upperBound, let value = words[address] { body(value) }
            }
            return
        }
        var address = (range.lowerBound &+ 7) & ~7
        while address >= range.lowerBound {
            let (end, overflow) = address.addingReportingOverflow(8)
            guard !overflow, end <= range.upperBound else { return }
            if let value = words[address] { body(value) }
            address = end
        }
    }
}
