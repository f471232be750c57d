/// Where a scan gets the contents of memory: every aligned 8-byte word in a virtual address
/// range that could be a pointer. Pages that are not present are skipped.
public protocol CandidateSource {
    /// Calls `body` with each candidate word value stored in `range` (8-byte aligned slots).
    mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void)
}

/// Candidate words from explicit (address, value) pairs: for tests and for register roots.
public struct WordListSource: CandidateSource {
    public var words: [UInt64: UInt64]

    public init(words: [UInt64: UInt64]) { self.words = words }

    public mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void) {
        var address = (range.lowerBound &+ 7) & ~7
        while address &+ 8 <= range.upperBound, address >= range.lowerBound {
            if let value = words[address] { body(value) }
            address &+= 8
        }
    }
}
