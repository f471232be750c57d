import Reachability
import Testing

/// The marker on crafted heaps with known valgrind classes (the shapes of lv-leak-tree).
@Suite struct ReachabilityMarkerTests {
    /// A little heap: blocks by address, memory as (address → word), roots as ranges of that memory.
    struct Heap {
        var blocks: [(start: UInt64, size: UInt64)] = []
        var words: [UInt64: UInt64] = [:]

        mutating func block(_ start: UInt64, _ size: UInt64, pointers: [UInt64] = []) {
            blocks.append((start, size))
            for (i, p) in pointers.enumerated() { words[start + UInt64(i) * 8] = p }
        }

        func classify(roots: [Range<UInt64>] = [], registers: [UInt64] = [],
                      rangeLimit: Int? = nil) -> [UInt64: (ReachabilityClass?, UInt64?, UInt64)] {
            let index = HeapBlockIndex(blocks: blocks)
            var source = WordListSource(words: words, rangeLimit: rangeLimit)
            let r = ReachabilityMarker().classify(index, rootRanges: roots, rootWords: registers, memory: &source)
            #expect(r.complete == (rangeLimit == nil))
            var out: [UInt64: (ReachabilityClass?, UInt64?, UInt64)] = [:]
            for i in 0..<index.count {
                let leader = r.leaders[i] >= 0 ? index.starts[r.leaders[i]] : nil
                out[index.starts[i]] = (r.classes[i], leader, r.indirectBytes[i])
            }
            return out
        }
    }

    static let globals: UInt64 = 0x60_0000

    @Test func treeDroppedAtTheRootIsOneDirectAndSixIndirect() {
        var heap = Heap()
        // A complete tree of depth 3; children at lower addresses than the root (allocated first).
        let nodes: [UInt64] = (0..<7).map { 0x1000 + UInt64($0) * 32 }
        let root = nodes[6]
        heap.block(nodes[0], 24); heap.block(nodes[1], 24); heap.block(nodes[2], 24); heap.block(nodes[3], 24)
        heap.block(nodes[4], 24, pointers: [nodes[0], nodes[1]])
        heap.block(nodes[5], 24, pointers: [nodes[2], nodes[3]])
        heap.block(root, 24, pointers: [nodes[4], nodes[5]])
        let c = heap.classify()
        #expect(c[root]?.0 == .directLeak)
        #expect(c[root]?.2 == 144)
        for n in nodes.dropLast() {
            #expect(c[n]?.0 == .indirectLeak)
            #expect(c[n]?.1 == root)
        }
    }

    @Test func aCycleHasExactlyOneDirectLeakTheLowerBlock() {
        var heap = Heap()
        heap.block(0x2000, 32, pointers: [0x2040])
        heap.block(0x2040, 32, pointers: [0x2000])
        let c = heap.classify()
        #expect(c[0x2000]?.0 == .directLeak)
        #expect(c[0x2000]?.2 == 32)
        #expect(c[0x2040]?.0 == .indirectLeak)
    }

    @Test func rootsRegistersInteriorPointersAndChains() {
        var heap = Heap()
        heap.block(0x3000, 48, pointers: [0x3100])         // cache head → next
        heap.block(0x3100, 48)
        heap.block(0x3200, 128)                              // interior only: possibly lost
        heap.block(0x3400, 64, pointers: [0x3500])           // held in a register only
        heap.block(0x3500, 16)
        heap.block(0x3600, 40)                               // XOR-hidden: no pointer anywhere
        heap.block(0x3700, 32, pointers: [0x3800])           // reached through the possibly lost block? no: from 0x3200
        heap.block(0x3800, 32)
        heap.words[0x3200 + 8] = 0x3700                      // the possibly lost block points at 0x3700's start
        heap.words[Self.globals] = 0x3000
        heap.words[Self.globals + 8] = 0x3200 + 64
        heap.words[Self.globals + 16] = 0x3600 ^ 0x5A5A_5A5A_5A5A_5A5A
        let c = heap.classify(roots: [Self.globals..<Self.globals + 24], registers: [0x3400, 7])
        #expect(c[0x3000]?.0 == .reachable)
        #expect(c[0x3100]?.0 == .reachable)
        #expect(c[0x3200]?.0 == .possiblyLost)
        #expect(c[0x3700]?.0 == .possiblyLost)   // only through a possibly lost block
        #expect(c[0x3800]?.0 == .possiblyLost)
        #expect(c[0x3400]?.0 == .reachable)
        #expect(c[0x3500]?.0 == .reachable)
        #expect(c[0x3600]?.0 == .directLeak)
    }

    @Test func theAllocatorsPointerToTheNextChunkHeaderIsNotAReference() {
        // A 40-byte block: glibc's chunk is 48 bytes, the next chunk's header is at start + 32.
        var heap = Heap()
        heap.block(0x4010, 40)
        heap.block(0x4110, 100)                              // chunk 112: next header at start + 96
        heap.words[Self.globals] = 0x4010 + 32               // main_arena.top → the top chunk's header
        heap.words[Self.globals + 8] = 0x4110 + 96
        var c = heap.classify(roots: [Self.globals..<Self.globals + 16])
        #expect(c[0x4010]?.0 == .directLeak)
        #expect(c[0x4110]?.0 == .directLeak)
        heap.words[Self.globals] = 0x4010 + 24               // a genuine interior pointer still counts
        c = heap.classify(roots: [Self.globals..<Self.globals + 16])
        #expect(c[0x4010]?.0 == .possiblyLost)
    }

    @Test func rootRangesAreReadOnlyWhereTheyLie() {
        var heap = Heap()
        heap.block(0x5000, 16)
        heap.words[Self.globals + 8] = 0x5000
        #expect(heap.classify(roots: [Self.globals..<Self.globals + 8])[0x5000]?.0 == .directLeak)
        #expect(heap.classify(roots: [Self.globals + 8..<Self.globals + 16])[0x5000]?.0 == .reachable)
    }

    @Test func aLaterCliqueAbsorbsAnEarlierLeader() {
        // 0x6000 → 0x6100 (its clique), and 0x6200 → 0x6000: one direct leak (0x6200) with 2 indirect.
        var heap = Heap()
        heap.block(0x6000, 32, pointers: [0x6100])
        heap.block(0x6100, 32)
        heap.block(0x6200, 32, pointers: [0x6000])
        let c = heap.classify()
        #expect(c[0x6200]?.0 == .directLeak)
        #expect(c[0x6200]?.2 == 64)
        #expect(c[0x6000]?.0 == .indirectLeak)
        #expect(c[0x6100]?.0 == .indirectLeak)
        #expect(c[0x6100]?.1 == 0x6200)
    }

    @Test func randomGraphsMatchABruteForceDefinition() {
        var rng = DeterministicRandom(seed: 5)
        for _ in 0..<200 {
            var heap = Heap()
            let n = Int(rng.next() % 12) + 1
            let starts = (0..<n).map { 0x10000 + UInt64($0) * 0x100 }
            var edges: [[(Int, Bool)]] = Array(repeating: [], count: n)
            for i in 0..<n {
                var ptrs: [UInt64] = []
                for _ in 0..<Int(rng.next() % 3) {
                    let t = Int(rng.next() % UInt64(n)), interior = rng.next() % 4 == 0
                    ptrs.append(starts[t] + (interior ? 8 : 0))
                    edges[i].append((t, interior))
                }
                heap.block(starts[i], 64, pointers: ptrs)
            }
            var roots: [(Int, Bool)] = []
            for k in 0..<Int(rng.next() % 3) {
                let t = Int(rng.next() % UInt64(n)), interior = rng.next() % 4 == 0
                heap.words[Self.globals + UInt64(k) * 8] = starts[t] + (interior ? 8 : 0)
                roots.append((t, interior))
            }
            let c = heap.classify(roots: [Self.globals..<Self.globals + 24])
            // Brute force: reachable = a start-pointer chain from a root; possibly = any chain.
            func closure(_ from: [(Int, Bool)], startsOnly: Bool) -> Set<Int> {
                var seen = Set<Int>(), work = from.filter { !startsOnly || !$0.1 }.map(\.0)
                while let b = work.popLast() {
                    guard seen.insert(b).inserted else { continue }
                    work += edges[b].filter { !startsOnly || !$0.1 }.map(\.0)
                }
                return seen
            }
            let reachable = closure(roots, startsOnly: true), any = closure(roots, startsOnly: false)
            for i in 0..<n {
                let expected: ReachabilityClass = reachable.contains(i) ? .reachable : any.contains(i) ? .possiblyLost : .directLeak
                let got = c[starts[i]]!.0
                if expected == .directLeak { #expect(got == .directLeak || got == .indirectLeak) } else { #expect(got == expected) }
            }
            // Every leak is either a leader or leads back to a leader that is a direct leak.
            for i in 0..<n where c[starts[i]]!.0 == .indirectLeak {
                #expect(c[c[starts[i]]!.1!]?.0 == .directLeak)
            }
        }
    }

    /// A forged allocation result of 64 KiB at 0xfffffffffffff000 (its end wraps past 2^64) killed
    /// the monitor here with "Range requires lowerBound <= upperBound". It is now an unreferenced
    /// block like any other, and the clique sums saturate instead of trapping.
    @Test func aBlockWhoseEndWrapsIsMarkedWithoutTrapping() {
        var heap = Heap()
        heap.block(0xFFFF_FFFF_FFFF_F000, 0x1_0000, pointers: [0x7000])
        heap.block(0x7000, 32)
        heap.words[Self.globals] = 0xFFFF_FFFF_FFFF_F008            // an interior pointer to the forged block
        let c = heap.classify()
        #expect(c[0xFFFF_FFFF_FFFF_F000]?.0 == .directLeak)
        #expect(c[0x7000]?.0 == .indirectLeak)
        #expect(heap.classify(roots: [Self.globals..<Self.globals + 8])[0xFFFF_FFFF_FFFF_F000]?.0 == .possiblyLost)
        let index = HeapBlockIndex(blocks: heap.blocks)
        #expect(index.range(of: 1) == 0xFFFF_FFFF_FFFF_F000..<UInt64.max)
        #expect(index.span == 0x7000..<UInt64.max)
    }

    @Test func indirectBytesSaturate() {
        var heap = Heap()
        heap.block(0x1000, 16, pointers: [0x2000, 0x3000])
        heap.block(0x2000, 1 << 63)
        heap.block(0x3000, 1 << 63)
        let c = heap.classify()
        #expect(c[0x1000]?.0 == .directLeak)
        #expect(c[0x1000]?.2 == UInt64.max)
    }

    /// A marking cut short proves only what it reached through start pointers: the rest is not
    /// classified (an unread pointer could have made it reachable), never called a leak.
    @Test func anIncompleteMarkingClassifiesOnlyWhatItProvedReachable() {
        var heap = Heap()
        heap.block(0x1000, 32, pointers: [0x2000])     // root → A → B → C
        heap.block(0x2000, 32, pointers: [0x3000])
        heap.block(0x3000, 32)
        heap.block(0x4000, 32, pointers: [0x5000 + 8]) // D: interior pointer to E
        heap.block(0x5000, 32)
        heap.block(0x6000, 32)                          // X: no pointer anywhere
        heap.words[Self.globals] = 0x1000
        heap.words[Self.globals + 8] = 0x4000 + 8
        // Served: the root range, then one block; the source gives up on the next range.
        let c = heap.classify(roots: [Self.globals..<Self.globals + 16], rangeLimit: 2)
        let classified = c.filter { $0.value.0 != nil }
        #expect(Set(classified.keys).isSubset(of: [0x1000, 0x2000]))
        #expect(classified.values.allSatisfy { $0.0 == .reachable })
        #expect(c[0x1000]?.0 == .reachable)
        for unproven: UInt64 in [0x3000, 0x4000, 0x5000, 0x6000] { #expect(c[unproven]?.0 == nil) }
        #expect(c.values.allSatisfy { $0.1 == nil && $0.2 == 0 })
    }

    @Test func aMarkingThatMissedRootsKeepsOnlyWhatItProvedReachable() {
        var heap = Heap()
        heap.block(0x1000, 32, pointers: [0x2000])
        heap.block(0x2000, 32)
        heap.block(0x3000, 32)
        let index = HeapBlockIndex(blocks: heap.blocks)
        var source = WordListSource(words: heap.words)
        let r = ReachabilityMarker().classify(index, rootRanges: [], rootWords: [0x1000], memory: &source).provenReachableOnly()
        #expect(r.classes == [.reachable, .reachable, nil])
        #expect(!r.complete && r.leaders == [-1, -1, -1] && r.indirectBytes == [0, 0, 0])
    }
}
