/// What a scan's pause read of one block whose kept references could not be used: every
/// candidate word of its memory, what they were read through (`CandidateSource.dependencies`) and
/// what the leak-check heuristics would read of it. The references are resolved from it after the
/// guest resumes, against the index of the blocks live at the pause.
public struct CapturedBlock: Sendable {
    public var start: UInt64
    public var size: UInt64
    public var time: UInt64
    public var candidates: [UInt64]
    public var dependencies: [UInt64]
    public var facts: BlockFacts?

    public init(start: UInt64, size: UInt64, time: UInt64, candidates: [UInt64], dependencies: [UInt64], facts: BlockFacts?) {
        (self.start, self.size, self.time) = (start, size, time)
        (self.candidates, self.dependencies, self.facts) = (candidates, dependencies, facts)
    }

    /// Reads block `start..<start + size` from `memory` now; nil when the source stopped or could
    /// not say what the words depend on (then nothing read can be kept).
    public static func read(start: UInt64, size: UInt64, time: UInt64, from memory: inout ProcessMemorySource,
                            heuristics: LeakCheckHeuristics) -> CapturedBlock? {
        let range = start..<start.addingSaturated(size)
        var candidates: [UInt64] = []
        memory.forEachCandidate(in: range) { candidates.append($0) }
        guard !memory.isIncomplete, let dependencies = memory.dependencies(of: range) else { return nil }
        // A word that hits a block is no vtable pointer, but the index is not at hand: any
        // candidate in a file's read-only data makes the slots worth finding.
        let vtables = heuristics.enabled.contains(.multipleInheritance) && candidates.contains { heuristics.isVirtualTable($0) }
        let facts = heuristics.enabled.isEmpty ? nil : memory.facts(of: range, heuristics: heuristics, vtables: vtables)
        guard !memory.isIncomplete, heuristics.enabled.isEmpty || facts != nil else { return nil }
        return CapturedBlock(start: start, size: size, time: time, candidates: candidates, dependencies: dependencies, facts: facts)
    }
}

/// A source for a marking that must not read guest memory (the guest runs again): every block's
/// references and facts are in the table, every root word is given. A read it is asked for
/// anyway is refused and makes the marking incomplete, so that nothing read from memory that
/// changed since the pause can make a block look leaked.
public struct NoMemorySource: CandidateSource {
    public private(set) var refusedReads = 0

    public init() {}

    public var isIncomplete: Bool { refusedReads > 0 }

    public mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void) {
        if !range.isEmpty { refusedReads += 1 }
    }

    public mutating func word(at address: UInt64) -> UInt64? {
        refusedReads += 1
        return nil
    }
}
