/// Conservative marking and classification of an address space's live blocks, the way valgrind
/// memcheck's leak check does it:
///
/// 1. From the roots, a pointer to a block's start makes it *reachable*; a pointer into its middle
///    makes it *possibly lost* (unless something better reaches it). A reachable block's contents
///    are scanned the same way; a possibly lost block's contents can only make others possibly lost.
/// 2. The blocks left are leaks. In address order, each one not yet claimed starts a clique: it is
///    a *direct* leak and every leak it reaches, through any pointer, is *indirect* and counted
///    under it. A direct leak reached by a later clique joins that clique (so in a cycle exactly
///    one block is direct: the lowest one not reached from another leak).
///
/// With leak-check heuristics (valgrind's `--leak-check-heuristics`), an interior pointer from a
/// root or a reachable block that matches one counts as a start pointer: the block is reachable
/// *via* that heuristic until a real start pointer from a root or reachable block is found.
///
/// When the memory source stops early (its budget ran out, or pages could not be read) the marking
/// may have missed pointers: only the blocks it proved reachable get a class; the others are left
/// unclassified, never called leaks.
public struct ReachabilityMarker {
    public init() {}

    /// Classifies every block of `index`.
    /// - Parameters:
    ///   - rootRanges: memory that holds roots (stacks, TLS, writable data of loaded objects).
    ///   - rootWords: root values not in memory (thread registers).
    ///   - heuristics: which interior pointers count as start pointers (none by default).
    public func classify(_ index: HeapBlockIndex, rootRanges: [Range<UInt64>], rootWords: [UInt64],
                         memory: inout some CandidateSource,
                         heuristics: LeakCheckHeuristics = .none) -> ReachabilityResult {
        var table = BlockReferenceTable.transient(for: index)
        return classify(rootRanges: rootRanges, rootWords: rootWords, memory: &memory, heuristics: heuristics, references: &table)
    }

    /// `classify(rootRanges:rootWords:memory:heuristics:references:)` over a process's memory:
    /// the same marking, specialized here for the source every process scan uses.
    public func classify(rootRanges: [Range<UInt64>], rootWords: [UInt64], processMemory memory: inout ProcessMemorySource,
                         heuristics: LeakCheckHeuristics = .none, references table: inout BlockReferenceTable) -> ReachabilityResult {
        classify(rootRanges: rootRanges, rootWords: rootWords, memory: &memory, heuristics: heuristics, references: &table)
    }

    /// Classifies every block of `table`'s index, using and keeping what earlier scans resolved of
    /// each block: a block's kept references are used instead of its memory; a block without them
    /// is read from `memory` and, when `memory` can say what they depend on, they are kept.
    public func classify(rootRanges: [Range<UInt64>], rootWords: [UInt64], memory: inout some CandidateSource,
                         heuristics: LeakCheckHeuristics = .none, references table: inout BlockReferenceTable) -> ReachabilityResult {
        let index = table.index
        let n = index.count
        var result = ReachabilityResult(classes: [ReachabilityClass?](repeating: .directLeak, count: n),
                                        leaders: [Int](repeating: -1, count: n),
                                        indirectBytes: [UInt64](repeating: 0, count: n))
        guard n > 0 else { return result }
        let span = table.span
        var marking = Marking(count: n, heuristics: heuristics)
        // Where a block's references start in the table's words: kept ones, or resolved now from
        // memory (and kept when what they depend on is known).
        func referencesOffset(of b: Int) -> Int {
            if let kept = table.trustedEntry(b) {
                table.countReuse()
                return kept
            }
            let range = index.range(of: b)
            if let kept = table.suspectEntry(b), let now = memory.dependencies(of: range), table.entry(at: kept, hasDependencies: now) {
                table.confirm(b)
                return kept
            }
            table.beginResolution()
            memory.forEachCandidate(in: range) { table.addCandidate($0) }
            let dependencies = table.keeps && !memory.isIncomplete ? memory.dependencies(of: range) : nil
            let facts = dependencies != nil && marking.usesHeuristics
                ? memory.facts(of: range, heuristics: heuristics, vtables: table.pendingWordsMayHoldVtables(heuristics)) : nil
            return table.finishResolution(of: b, dependencies: memory.isIncomplete ? nil : dependencies, facts: facts)
        }
        for value in rootWords { marking.reach(value, index: index, span: span, definite: true) }
        if !marking.interior.isEmpty { marking.tryHeuristics(table: table, memory: &memory) }
        for range in rootRanges {
            memory.forEachCandidate(in: range) { marking.reach($0, index: index, span: span, definite: true) }
            if !marking.interior.isEmpty { marking.tryHeuristics(table: table, memory: &memory) }
        }
        while let b = marking.next(), !memory.isIncomplete {
            let definite = marking.state[b] == 2
            let offset = referencesOffset(of: b)
            var k = BlockReferences.hitsStart(offset)
            for _ in 0..<BlockReferences.counts(in: table.words, at: offset).hits {
                let target = table.words[k + 1]
                marking.reach(table.words[k], block: Int(target >> 1), atStart: target & 1 != 0, definite: definite)
                k += 2
            }
            if !marking.interior.isEmpty { marking.tryHeuristics(table: table, memory: &memory) }
        }
        let state = marking.state, via = marking.via
        result.judgedBlocks = marking.judged
        // Each pointer in block `b` to a block: its value, the block, whether it is the block's start.
        func forEachHit(of b: Int, _ body: (UInt64, Int, Bool) -> Void) {
            let offset = referencesOffset(of: b)
            var k = BlockReferences.hitsStart(offset)
            for _ in 0..<BlockReferences.counts(in: table.words, at: offset).hits {
                let target = table.words[k + 1]
                body(table.words[k], Int(target >> 1), target & 1 != 0)
                k += 2
            }
        }
        guard !memory.isIncomplete else {
            // Only a chain of start pointers found in memory that was read proves anything.
            result.complete = false
            result.leakGroupingComplete = false
            for b in 0..<n { result.classes[b] = state[b] == 2 ? .reachable : nil }
            result.viaHeuristic = via
            return result
        }
        // Cliques of leaked blocks.
        var leak = [Bool](repeating: false, count: n)
        for b in 0..<n where state[b] == 0 { leak[b] = true }
        var claimed = [Bool](repeating: false, count: n)
        for leader in 0..<n where leak[leader] && !claimed[leader] {
            claimed[leader] = true
            var stack = [leader]
            while let b = stack.popLast() {
                forEachHit(of: b) { _, t, _ in
                    guard leak[t], t != leader, result.leaders[t] == -1 else { return }
                    if claimed[t] {
                        // A former clique leader: it and everything it had claimed join this clique.
                        result.indirectBytes[leader] = result.indirectBytes[leader]
                            .addingSaturated(index.sizes[t].addingSaturated(result.indirectBytes[t]))
                        result.indirectBytes[t] = 0
                        result.leaders[t] = leader
                        result.classes[t] = .indirectLeak
                        return
                    }
                    claimed[t] = true
                    result.leaders[t] = leader
                    result.classes[t] = .indirectLeak
                    result.indirectBytes[leader] = result.indirectBytes[leader].addingSaturated(index.sizes[t])
                    stack.append(t)
                }
            }
        }
        // Leaks are proven (the marking was complete); a grouping cut short only leaves more of them direct.
        result.leakGroupingComplete = !memory.isIncomplete
        result.viaHeuristic = via
        for b in 0..<n {
            switch state[b] {
            case 2: result.classes[b] = .reachable
            case 1: result.classes[b] = .possiblyLost
            default: break
            }
        }
        // Members of an absorbed clique name the leader that absorbed it.
        for b in 0..<n where result.leaders[b] >= 0 {
            var l = result.leaders[b]
            var hops = 0
            while result.leaders[l] >= 0, hops < n { l = result.leaders[l]; hops += 1 }
            result.leaders[b] = l
        }
        return result
    }
}

/// The classes a scan found, by block index in its `HeapBlockIndex`.
public struct ReachabilityResult: Sendable {
    /// Each block's class; nil when the marking was incomplete and did not prove it reachable.
    public var classes: [ReachabilityClass?]
    /// For an indirect leak, the index of the direct leak that leads to it; else -1.
    public var leaders: [Int]
    /// For a direct leak, the bytes of the indirect leaks it leads to (saturated at 2^64 − 1).
    public var indirectBytes: [UInt64]
    /// For a reachable block that no start pointer from a root or reachable block reaches: the
    /// heuristic whose interior pointer made it reachable; else nil (empty: no heuristics found any).
    public var viaHeuristic: [LeakCheckHeuristic?] = []
    /// Whether the marking read everything it needed: only then are leaks (and possibly lost blocks) proven.
    public var complete = true
    /// Whether every leak was followed when grouping leaks into cliques (else some indirect leaks
    /// are counted as direct).
    public var leakGroupingComplete = true
    /// Blocks whose words the heuristics judged (the target of an interior pointer they tried).
    public var judgedBlocks: [Int] = []

    /// The result of a marking that is known to have missed roots: only reachable blocks keep
    /// their class (missing roots can only hide reachability, never create it).
    public func provenReachableOnly() -> ReachabilityResult {
        var result = self
        result.classes = classes.map { $0 == .reachable ? .reachable : nil }
        result.leaders = leaders.map { _ in -1 }
        result.indirectBytes = indirectBytes.map { _ in 0 }
        result.viaHeuristic = viaHeuristic.indices.map { classes[$0] == .reachable ? viaHeuristic[$0] : nil }
        result.complete = false
        result.leakGroupingComplete = false
        return result
    }
}

/// The marking's state: each block's mark, why a heuristic made it reachable, what is left to
/// scan. Its own value (not variables captured by closures), so the hot loop does plain array work.
private struct Marking {
    /// 0 unreached, 1 possibly lost, 2 reachable.
    var state: [UInt8]
    var via: [LeakCheckHeuristic?]
    /// Blocks to scan: those found reachable first, so that a block is rarely scanned first as
    /// possibly lost and then again as reachable (the result does not depend on the order).
    var work: [Int] = []
    var possible: [Int] = []
    let heuristics: LeakCheckHeuristics
    let usesHeuristics: Bool
    /// Interior pointers from roots or reachable blocks, tried once the range being scanned is done
    /// (the heuristics read the block from memory, which cannot be read while it serves words).
    var interior: [(value: UInt64, block: Int)] = []
    /// Interior pointers already tried against the heuristics (a value names one block and offset).
    var tried: [UInt64: LeakCheckHeuristic?] = [:]
    /// Blocks the heuristics judged, once each time a new interior pointer to them was tried.
    var judged: [Int] = []

    init(count: Int, heuristics: LeakCheckHeuristics) {
        state = [UInt8](repeating: 0, count: count)
        via = [LeakCheckHeuristic?](repeating: nil, count: count)
        self.heuristics = heuristics
        usesHeuristics = !heuristics.enabled.isEmpty
    }

    /// The next block to scan: a reachable one, else one still only possibly lost.
    mutating func next() -> Int? {
        if let b = work.popLast() { return b }
        while let b = possible.popLast() {
            if state[b] == 1 { return b }
        }
        return nil
    }

    mutating func reach(_ value: UInt64, index: HeapBlockIndex, span: Range<UInt64>, definite: Bool) {
        guard span.contains(value), let hit = index.block(containing: value) else { return }
        reach(value, block: hit.block, atStart: hit.atStart, definite: definite)
    }

    @inline(__always)
    mutating func reach(_ value: UInt64, block b: Int, atStart: Bool, definite: Bool) {
        if atStart && definite {
            if state[b] != 2 { state[b] = 2; work.append(b) }
            if via[b] != nil { via[b] = nil }
        } else if definite, usesHeuristics {
            if state[b] != 2 { interior.append((value, b)) }
        } else if state[b] == 0 {
            state[b] = 1; possible.append(b)
        }
    }

    /// A block's words are taken from the facts of its trusted entry when it has them, else read.
    mutating func tryHeuristics(table: BlockReferenceTable, memory: inout some CandidateSource) {
        guard !interior.isEmpty else { return }
        let index = table.index
        for (value, b) in interior where state[b] != 2 {
            let found: LeakCheckHeuristic?
            if let known = tried[value] {
                found = known
            } else {
                let start = index.starts[b], size = index.sizes[b]
                judged.append(b)
                found = heuristics.match(offset: value &- start, blockSize: size) { k in
                    let (end, overflow) = k.addingReportingOverflow(8)
                    guard !overflow, end <= size else { return nil }
                    let kept = table.factWord(of: b, byte: k)
                    return kept.known ? kept.word : memory.word(at: start &+ k)
                }
                tried[value] = found
            }
            if let found {
                state[b] = 2; via[b] = found; work.append(b)
            } else if state[b] == 0 {
                state[b] = 1; possible.append(b)
            }
        }
        interior.removeAll(keepingCapacity: true)
    }
}
