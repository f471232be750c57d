import Foundation
import LeakAnalysis
import Reachability
import Testing

/// valgrind's four leak-check heuristics as predicates over a block's bytes, and in the marker.
@Suite struct LeakCheckHeuristicTests {
    /// A block's words by byte offset (missing: unreadable).
    static func reader(_ words: [UInt64: UInt64]) -> (UInt64) -> UInt64? { { words[$0] } }
    static let rodata: [Range<UInt64>] = [0x40_0000..<0x40_1000]
    static func isVTable(_ v: UInt64) -> Bool { v & 7 == 0 && rodata.contains { $0.contains(v) } }

    static func matches(_ h: LeakCheckHeuristic, offset: UInt64, size: UInt64, _ words: [UInt64: UInt64]) -> Bool {
        h.matches(offset: offset, blockSize: size, word: reader(words), isVirtualTable: isVTable)
    }

    @Test func stdStringNeedsOffset24ExactSizeAndLengthWithinCapacity() {
        // "Valgrind": length 8, capacity 8, refcount 0; block 24 + 8 + 1 = 33 bytes.
        #expect(Self.matches(.stdString, offset: 24, size: 33, [0: 8, 8: 8, 16: 0]))
        #expect(Self.matches(.stdString, offset: 24, size: 33, [0: 3, 8: 8, 16: 0]))
        #expect(!Self.matches(.stdString, offset: 24, size: 33, [0: 9, 8: 8, 16: 0]))   // length > capacity
        #expect(!Self.matches(.stdString, offset: 24, size: 40, [0: 8, 8: 8, 16: 0]))   // size != 25 + capacity
        #expect(!Self.matches(.stdString, offset: 16, size: 33, [0: 8, 8: 8, 16: 0]))   // not 3 words in
        #expect(!Self.matches(.stdString, offset: 24, size: 33, [8: 8]))                // length unreadable
        // Hostile capacity: 25 + capacity wraps to a small number.
        #expect(!Self.matches(.stdString, offset: 24, size: 8, [0: 0, 8: UInt64.max - 16]))
    }

    @Test func length64NeedsTheRestOfTheBlockInTheFirstWord() {
        #expect(Self.matches(.length64, offset: 8, size: 31 + 8, [0: 31]))
        #expect(!Self.matches(.length64, offset: 8, size: 39, [0: 30]))
        #expect(!Self.matches(.length64, offset: 8, size: 8, [0: 0]))                    // length 0
        #expect(!Self.matches(.length64, offset: 16, size: 39, [0: 31]))
        #expect(!Self.matches(.length64, offset: 8, size: 39, [0: UInt64.max]))
    }

    @Test func newArrayNeedsACountThatDividesTheRest() {
        #expect(Self.matches(.newArray, offset: 8, size: 8 + 3 * 8, [0: 3]))
        #expect(Self.matches(.newArray, offset: 8, size: 8 + 3 * 8, [0: 24]))
        #expect(!Self.matches(.newArray, offset: 8, size: 8 + 3 * 8, [0: 5]))
        #expect(!Self.matches(.newArray, offset: 8, size: 32, [0: 0]))                   // no division by zero
        #expect(!Self.matches(.newArray, offset: 8, size: 32, [0: UInt64.max]))
        #expect(!Self.matches(.newArray, offset: 8, size: 32, [:]))
    }

    @Test func multipleInheritanceNeedsTwoVTablePointers() {
        let vtA: UInt64 = 0x40_0010, vtB: UInt64 = 0x40_0040
        #expect(Self.matches(.multipleInheritance, offset: 16, size: 32, [0: vtA, 8: 0x61, 16: vtB, 24: 0x62]))
        #expect(!Self.matches(.multipleInheritance, offset: 16, size: 32, [0: 0x61, 16: vtB]))      // first word no vtable
        #expect(!Self.matches(.multipleInheritance, offset: 16, size: 32, [0: vtA, 16: 0x1234]))    // pointed word no vtable
        #expect(!Self.matches(.multipleInheritance, offset: 12, size: 32, [0: vtA, 16: vtB]))       // unaligned pointer
        #expect(!Self.matches(.multipleInheritance, offset: 16, size: 32, [0: vtA, 16: vtB + 1]))   // unaligned vtable
        #expect(!Self.matches(.multipleInheritance, offset: 16, size: 32, [0: vtA, 16: 0x50_0000])) // outside read-only data
    }

    @Test func noneMatchesAtTheStartOrPastTheEnd() {
        for h in LeakCheckHeuristic.allCases {
            #expect(!Self.matches(h, offset: 0, size: 33, [0: 8, 8: 8, 16: 0]))
            #expect(!Self.matches(h, offset: 40, size: 33, [0: 8, 8: 8, 16: 0]))
            #expect(!Self.matches(h, offset: 8, size: 0, [0: 8, 8: 8]))
        }
    }

    @Test func hostileWordsNeverTrap() {
        let hostile: [UInt64] = [0, 1, 7, 8, 24, 25, UInt64.max, UInt64.max - 7, UInt64.max - 24, 1 << 63]
        for h in LeakCheckHeuristic.allCases {
            for a in hostile {
                for b in hostile {
                    for size in hostile {
                        for offset: UInt64 in [8, 16, 24, UInt64.max - 7] {
                            _ = h.matches(offset: offset, blockSize: size, word: { $0 == 0 ? a : b }, isVirtualTable: { _ in true })
                        }
                    }
                }
            }
        }
    }

    @Test func optionParsesValgrindsSpelling() throws {
        #expect(try LeakCheckHeuristics(parsing: "all") == .all)
        #expect(try LeakCheckHeuristics(parsing: "none") == .none)
        #expect(try LeakCheckHeuristics(parsing: "newarray,stdstring").enabled == [.stdString, .newArray])
        #expect(try LeakCheckHeuristics(parsing: "multipleinheritance").description == "multipleinheritance")
        #expect(LeakCheckHeuristics.all.description == "all")
        #expect(throws: LeakCheckHeuristicsError.unknown("std")) { try LeakCheckHeuristics(parsing: "std") }
        #expect(throws: LeakCheckHeuristicsError.unknown("")) { try LeakCheckHeuristics(parsing: "") }
    }

    @Test func virtualTableLookupUsesMergedRanges() {
        var h = LeakCheckHeuristics.all
        h.readOnlyData = LeakCheckHeuristics.merged([0x5000..<0x6000, 0x1000..<0x2000, 0x1800..<0x3000, 0x4000..<0x4000])
        #expect(h.readOnlyData == [0x1000..<0x3000, 0x5000..<0x6000])
        #expect(h.isVirtualTable(0x1000) && h.isVirtualTable(0x2ff8) && h.isVirtualTable(0x5ff8))
        #expect(!h.isVirtualTable(0x3000) && !h.isVirtualTable(0x4ff8) && !h.isVirtualTable(0x1004) && !h.isVirtualTable(0x8))
    }

    // MARK: - In the marker

    static let globals: UInt64 = 0x60_0000

    /// Classes and heuristics of blocks reached by the given root words, with the given heuristics.
    static func mark(_ blocks: [(UInt64, UInt64)], words: [UInt64: UInt64], roots: [UInt64],
                     heuristics: LeakCheckHeuristics) -> [UInt64: (ReachabilityClass?, LeakCheckHeuristic?)] {
        var all = words
        for (i, r) in roots.enumerated() { all[globals + UInt64(i) * 8] = r }
        let index = HeapBlockIndex(blocks: blocks.map { (start: $0.0, size: $0.1) })
        var source = WordListSource(words: all)
        var h = heuristics
        h.readOnlyData = rodata
        let r = ReachabilityMarker().classify(index, rootRanges: [globals..<globals + 0x100], rootWords: [],
                                              memory: &source, heuristics: h)
        var out: [UInt64: (ReachabilityClass?, LeakCheckHeuristic?)] = [:]
        for i in 0..<index.count { out[index.starts[i]] = (r.classes[i], r.viaHeuristic.isEmpty ? nil : r.viaHeuristic[i]) }
        return out
    }

    /// The four shapes of valgrind's leak_cpp_interior test, written by hand.
    static let shapes: (blocks: [(UInt64, UInt64)], words: [UInt64: UInt64], roots: [UInt64]) = (
        blocks: [(0x1000, 33), (0x2000, 39), (0x3000, 32), (0x4000, 32), (0x5000, 16)],
        words: [0x1000: 8, 0x1008: 8, 0x1010: 0,                 // std::string rep "Valgrind"
                0x2000: 31,                                       // sqlite-style length prefix
                0x3000: 3,                                        // new[] cookie: 3 elements of 8
                0x4000: 0x40_0010, 0x4010: 0x40_0040,             // object with two vtable pointers
                0x5008: 0x1234],
        roots: [0x1018, 0x2008, 0x3008, 0x4010, 0x5008])

    @Test func eachShapeIsReachableViaItsHeuristic() {
        let c = Self.mark(Self.shapes.blocks, words: Self.shapes.words, roots: Self.shapes.roots, heuristics: .all)
        #expect(c[0x1000]! == (.reachable, .stdString))
        // A length-64 block is also a valid new[] cookie: valgrind reports the first that matches.
        #expect(c[0x2000]! == (.reachable, .length64))
        #expect(c[0x3000]! == (.reachable, .newArray))
        #expect(c[0x4000]! == (.reachable, .multipleInheritance))
        #expect(c[0x5000]! == (.possiblyLost, nil))
    }

    @Test func withoutHeuristicsTheyArePossiblyLost() {
        let c = Self.mark(Self.shapes.blocks, words: Self.shapes.words, roots: Self.shapes.roots, heuristics: .none)
        for start: UInt64 in [0x1000, 0x2000, 0x3000, 0x4000, 0x5000] { #expect(c[start]! == (.possiblyLost, nil)) }
        let only = Self.mark(Self.shapes.blocks, words: Self.shapes.words, roots: Self.shapes.roots,
                             heuristics: LeakCheckHeuristics([.newArray]))
        #expect(only[0x2000]! == (.reachable, .newArray))
        #expect(only[0x1000]! == (.possiblyLost, nil))
    }

    @Test func aStartPointerClearsTheHeuristic() {
        // Both an interior (heuristic) pointer and a start pointer from roots: plainly reachable.
        let c = Self.mark([(0x2000, 39)], words: [0x2000: 31], roots: [0x2008, 0x2000], heuristics: .all)
        #expect(c[0x2000]! == (.reachable, nil))
    }

    @Test func aPossiblyLostBlockPassesNoHeuristic() {
        // root -?-> A (no heuristic) -> B at +8 with a length prefix: B is only possibly lost.
        let c = Self.mark([(0x7000, 64), (0x2000, 39)], words: [0x7000: 0x2008, 0x2000: 31], roots: [0x7010], heuristics: .all)
        #expect(c[0x7000]! == (.possiblyLost, nil))
        #expect(c[0x2000]! == (.possiblyLost, nil))
    }

    @Test func aHeuristicBlockPassesReachabilityOn() {
        // root -?-> A (new[] cookie) -> B: B reachable, not via a heuristic itself.
        let c = Self.mark([(0x3000, 32), (0x8000, 16)], words: [0x3000: 3, 0x3008: 0x8000], roots: [0x3008], heuristics: .all)
        #expect(c[0x3000]! == (.reachable, .newArray))
        #expect(c[0x8000]! == (.reachable, nil))
    }

    @Test func leakedBlocksIgnoreHeuristics() {
        // Only a leaked block points at +8: a clique, as without heuristics.
        let c = Self.mark([(0x2000, 39), (0x9000, 16)], words: [0x2000: 31, 0x9000: 0x2008], roots: [], heuristics: .all)
        #expect(c[0x9000]! == (.directLeak, nil))
        #expect(c[0x2000]! == (.indirectLeak, nil))
    }
}

/// How reports count blocks reachable via a heuristic (valgrind's "of which reachable via heuristic").
@Suite struct HeuristicReportTests {
    @Test func totalsAddUpPerHeuristicAndTheTextSaysSo() throws {
        var a = ClassTotals()
        a.addReachable(via: .length64, bytes: 39)
        a.addReachable(via: .stdString, bytes: 33)
        var b = ClassTotals()
        b.addReachable(via: .stdString, bytes: 80)
        let sum = a + b + ClassTotals()
        #expect(sum.reachableViaHeuristic == ["stdstring": BlockTotal(blocks: 2, bytes: 113), "length64": BlockTotal(blocks: 1, bytes: 39)])
        #expect(ClassTotals().reachableViaHeuristic == nil)

        var report = try ReportFixtures.leakTree()
        report.summary.classes.reachableViaHeuristic = sum.reachableViaHeuristic
        let text = LeakReportText.render(report)
        #expect(text.contains("(of which reachable via heuristic: stdstring 113 byte(s) in 2 object(s), length64 39 byte(s) in 1 object(s))"))
        // The JSON carries it and reads back; a report without any has no such key.
        let json = try JSONEncoder().encode(report)
        #expect(try JSONDecoder().decode(LeakReport.self, from: json) == report)
        #expect(!String(decoding: try JSONEncoder().encode(try ReportFixtures.leakTree()), as: UTF8.self).contains("reachableViaHeuristic"))
    }
}
