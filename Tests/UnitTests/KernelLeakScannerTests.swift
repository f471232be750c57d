import Introspection
import LeakAnalysis
import Reachability
import Testing

/// Kernel memory made of explicit words; frames are addresses / 4096 (an identity map).
struct KernelWords: KernelMemoryReading {
    var words: WordListSource
    /// Pages whose frames cannot be found.
    var untranslatable: Set<UInt64> = []

    init(_ words: [UInt64: UInt64], rangeLimit: Int? = nil) {
        self.words = WordListSource(words: words, rangeLimit: rangeLimit)
    }

    var isIncomplete: Bool { words.isIncomplete }

    mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void) {
        words.forEachCandidate(in: range, body)
    }

    mutating func frames(of range: Range<UInt64>) -> [UInt64]? {
        var result: [UInt64] = []
        var page = range.lowerBound & ~0xFFF
        while page < range.upperBound {
            if untranslatable.contains(page) { return nil }
            result.append(page >> 12)
            let (next, overflow) = page.addingReportingOverflow(4096)
            if overflow { break }
            page = next
        }
        return result
    }
}

@Suite struct KernelLeakScannerTests {
    static let heap: UInt64 = 0xFFFF_8880_0100_0000
    static let data: UInt64 = 0xFFFF_FFFF_8200_0000
    static func object(_ n: UInt64, size: UInt64 = 64, at time: Double = 0) -> KernelScanObject {
        KernelScanObject(address: heap + n * 0x1000, size: size, allocatedAt: time)
    }
    static func roots(_ ranges: [KernelRootRange] = [KernelRootRange(data..<data + 0x100, .imageData)], registers: [UInt64] = []) -> KernelRootSet {
        var set = KernelRootSet()
        set.ranges = ranges
        set.registerWords = registers
        return set
    }
    static let quick = KernelLeakRules(minimumAge: 5, consecutiveScans: 1)

    func scan(_ scanner: inout KernelLeakScanner, _ objects: [KernelScanObject], _ words: [UInt64: UInt64],
              roots: KernelRootSet = roots(), freed: [UInt64: UInt64] = [:], now: Double = 100,
              written: Set<UInt64>? = nil, rangeLimit: Int? = nil) -> [UInt64: KernelObjectVerdict] {
        var memory = KernelWords(words, rangeLimit: rangeLimit)
        let result = scanner.scan(objects: objects, roots: roots, memory: &memory, freedSlots: freed, now: now, writtenFrames: written)
        return Dictionary(uniqueKeysWithValues: result.verdicts.map { ($0.object.address, $0) })
    }

    @Test func interiorPointersReferenceAnObject() {
        var scanner = KernelLeakScanner(rules: Self.quick)
        let a = Self.object(1, size: 24), b = Self.object(2, size: 64), c = Self.object(3), d = Self.object(4)
        // A global points 16 bytes into a (24 bytes: where glibc's next chunk header would be);
        // a holds a list_head pointer into the middle of b; a register points at c's last byte.
        let v = scan(&scanner, [a, b, c, d], [Self.data + 8: a.address + 16, a.address: b.address + 40],
                     roots: Self.roots(registers: [c.address + 63]))
        #expect(v[a.address]?.reachability == .reachable)
        #expect(v[b.address]?.reachability == .reachable)
        #expect(v[c.address]?.reachability == .reachable)
        #expect(v[d.address]?.reachability == .directLeak)
        #expect(v.values.allSatisfy { $0.reachability != .possiblyLost })
        // One past the end is not a reference.
        let w = scan(&scanner, [d], [Self.data: d.address + 64])
        #expect(w[d.address]?.reachability == .directLeak)
    }

    @Test func aDroppedChainIsOneDirectAndTheRestIndirect() {
        var scanner = KernelLeakScanner(rules: Self.quick)
        let chain = (1...5).map { Self.object($0, size: 32) }
        var words: [UInt64: UInt64] = [:]
        for i in 0..<4 { words[chain[i].address + 8] = chain[i + 1].address + 8 }  // embedded list_head links
        let v = scan(&scanner, chain, words)
        #expect(v[chain[0].address]?.reachability == .directLeak)
        #expect(v[chain[0].address]?.indirectBytes == 4 * 32)
        #expect(v[chain[0].address]?.reported == true)
        for o in chain.dropFirst() {
            #expect(v[o.address]?.reachability == .indirectLeak)
            #expect(v[o.address]?.leader == chain[0].address)
            #expect(v[o.address]?.reported == true)
        }
    }

    @Test func anObjectIsReportedAfterNConsecutiveScansAndOnlyWhenOldEnough() {
        var scanner = KernelLeakScanner(rules: KernelLeakRules(minimumAge: 5, consecutiveScans: 3))
        let old = Self.object(1, at: 0), young = Self.object(2, at: 9)
        var v = scan(&scanner, [old, young], [:], now: 10)
        #expect(v[old.address]?.unreferencedScans == 1 && v[old.address]?.holds == [.fewerScans])
        #expect(v[young.address]?.holds == [.tooYoung, .fewerScans])
        v = scan(&scanner, [old, young], [:], now: 11)
        #expect(v[old.address]?.reported == false && v[old.address]?.unreferencedScans == 2)
        v = scan(&scanner, [old, young], [:], now: 12)
        #expect(v[old.address]?.reported == true && v[old.address]?.holds == [])
        #expect(v[young.address]?.reported == false && v[young.address]?.holds == [.tooYoung])
        v = scan(&scanner, [old, young], [:], now: 14)
        #expect(v[young.address]?.reported == true && v[young.address]?.unreferencedScans == 4)
        // A reference resets the count and the report.
        v = scan(&scanner, [old, young], [Self.data: old.address], now: 15)
        #expect(v[old.address]?.reachability == .reachable && v[old.address]?.reported == false)
        #expect(v[old.address]?.unreferencedScans == 0)
        v = scan(&scanner, [old, young], [:], now: 16)
        #expect(v[old.address]?.unreferencedScans == 1 && v[old.address]?.reported == false)
    }

    @Test func aReallocatedSlotStartsOver() {
        var scanner = KernelLeakScanner(rules: KernelLeakRules(minimumAge: 0, consecutiveScans: 2))
        let first = Self.object(1, at: 1)
        _ = scan(&scanner, [first], [:], now: 10)
        var v = scan(&scanner, [first], [:], now: 11)
        #expect(v[first.address]?.reported == true)
        let again = Self.object(1, at: 10.5)
        v = scan(&scanner, [again], [:], now: 12)
        #expect(v[again.address]?.unreferencedScans == 1 && v[again.address]?.reported == false)
        #expect(scanner.trackedObjects == 1)
    }

    @Test func anObjectWrittenSinceTheLastScanIsHeldAndItsContentsAreRoots() {
        var scanner = KernelLeakScanner(rules: Self.quick)
        let busy = Self.object(1), held = Self.object(2), idle = Self.object(3)
        let written: Set<UInt64> = [busy.address >> 12]
        var v = scan(&scanner, [busy, held, idle], [busy.address + 8: held.address], written: written)
        #expect(v[busy.address]?.reachability == .directLeak)
        #expect(v[busy.address]?.reported == false && v[busy.address]?.holds == [.writtenSinceLastScan])
        #expect(v[held.address]?.reachability == .reachable)
        #expect(v[idle.address]?.reported == true)
        // An empty list_head in a written object points to the object itself: not a reference.
        var selfish = KernelLeakScanner(rules: Self.quick)
        v = scan(&selfish, [busy], [busy.address + 16: busy.address + 16, busy.address + 24: busy.address + 16], written: written)
        #expect(v[busy.address]?.reachability == .directLeak && v[busy.address]?.holds == [.writtenSinceLastScan])
        // Not written since: reported now. Without a dirty log (nil) the rule does not apply.
        v = scan(&scanner, [busy, held, idle], [busy.address + 8: held.address], written: [])
        #expect(v[busy.address]?.reported == true && v[held.address]?.reachability == .indirectLeak)
        var other = KernelLeakScanner(rules: Self.quick)
        v = scan(&other, [busy], [:], written: nil)
        #expect(v[busy.address]?.reported == true)
    }

    @Test func aWriteNextToAnObjectDoesNotHoldItOnlyAChangeOfItsPointersDoes() {
        var scanner = KernelLeakScanner(rules: KernelLeakRules(minimumAge: 0, consecutiveScans: 2))
        // Two small objects on one page: the page is written every scan (the neighbour is busy).
        let leak = KernelScanObject(address: Self.heap, size: 96, allocatedAt: 0)
        let next = KernelScanObject(address: Self.heap + 96, size: 96, allocatedAt: 0)
        let page: Set<UInt64> = [Self.heap >> 12]
        var words: [UInt64: UInt64] = [leak.address: next.address]
        var v = scan(&scanner, [leak, next], words, written: page)
        #expect(v[leak.address]?.holds == [.fewerScans, .writtenSinceLastScan])
        #expect(v[next.address]?.reachability == .reachable)
        // Same pointers, page written again: no longer held; the chain is one direct, one indirect.
        v = scan(&scanner, [leak, next], words, written: page)
        #expect(v[leak.address]?.reported == true && v[leak.address]?.holds == [])
        #expect(v[next.address]?.reachability == .indirectLeak && v[next.address]?.reported == false)
        v = scan(&scanner, [leak, next], words, written: page)
        #expect(v[next.address]?.reported == true)
        // Its pointer changes: held again, and what it points to now is reachable.
        words[leak.address] = next.address + 8
        words[leak.address + 8] = 0xFFFF_8880_0000_0000
        v = scan(&scanner, [leak, next], words, written: page)
        #expect(v[leak.address]?.holds.isEmpty == true && v[leak.address]?.reported == true)
        #expect(v[next.address]?.reachability == .reachable)
    }

    @Test func anIncompleteScanReportsNothingNew() {
        var scanner = KernelLeakScanner(rules: KernelLeakRules(minimumAge: 0, consecutiveScans: 2))
        let a = Self.object(1), b = Self.object(2), c = Self.object(3)
        _ = scan(&scanner, [a, b, c], [Self.data: c.address])
        var v = scan(&scanner, [a, b, c], [Self.data: c.address])
        #expect(v[a.address]?.reported == true && v[b.address]?.reported == true)
        // A root kind that could not be enumerated: reachable stays proven, a stays reported, b's
        // count does not move, nothing is newly reported.
        var broken = Self.roots()
        broken.problems = ["task stacks: cannot read"]
        var memory = KernelWords([Self.data: c.address])
        let d = Self.object(4)
        let result = scanner.scan(objects: [a, b, c, d], roots: broken, memory: &memory, now: 100, writtenFrames: nil)
        #expect(!result.complete && result.problems == ["task stacks: cannot read"])
        v = Dictionary(uniqueKeysWithValues: result.verdicts.map { ($0.object.address, $0) })
        #expect(v[c.address]?.reachability == .reachable)
        #expect(v[a.address]?.reachability == nil && v[a.address]?.reported == true)
        #expect(v[d.address]?.reachability == nil && v[d.address]?.reported == false && v[d.address]?.holds == [.scanIncomplete])
        // Memory that stops serving words (its budget ran out): the same.
        v = scan(&scanner, [a, b, c, d], [Self.data: c.address], rangeLimit: 0)
        #expect(v[d.address]?.reported == false && v[d.address]?.unreferencedScans == 0)
        // Complete again: d needs its two scans like any other.
        v = scan(&scanner, [a, b, c, d], [Self.data: c.address])
        #expect(v[d.address]?.unreferencedScans == 1 && v[d.address]?.reported == false)
    }

    @Test func conservativeRootsLeaveOutTrackedObjectsAndFreedSlots() {
        var scanner = KernelLeakScanner(rules: Self.quick)
        // One slab page holding a tracked object, a freed slot and a pre-existing object.
        let page = Self.heap + 0x10_0000
        let tracked = KernelScanObject(address: page, size: 64, allocatedAt: 0)
        let freedSlot = page + 64, preexisting = page + 128
        let a = Self.object(1), b = Self.object(2), c = Self.object(3)
        let words: [UInt64: UInt64] = [tracked.address: a.address, freedSlot: b.address, preexisting: c.address]
        let roots = Self.roots([KernelRootRange(page..<page + 4096, .slabPage)])
        var memory = KernelWords(words)
        let result = scanner.scan(objects: [tracked, a, b, c], roots: roots, memory: &memory, freedSlots: [freedSlot: 64],
                                  now: 100, writtenFrames: nil)
        let v = Dictionary(uniqueKeysWithValues: result.verdicts.map { ($0.object.address, $0) })
        #expect(v[tracked.address]?.reachability == .directLeak)
        #expect(v[a.address]?.reachability == .indirectLeak)
        #expect(v[b.address]?.reachability == .directLeak)
        #expect(v[c.address]?.reachability == .reachable)
        #expect(result.statistics.rootBytes[.slabPage] == 4096 - 128)
        #expect(result.statistics.conservativeBytesBeforeSubtraction == 4096)
    }

    @Test func hostileObjectListsNeverTrap() {
        var scanner = KernelLeakScanner(rules: KernelLeakRules(minimumAge: 0, consecutiveScans: 1, maximumObjects: 3,
                                                               maximumObjectBytes: 1 << 20))
        // A range that would wrap past 2^64, a zero-size object, duplicates, NaN times.
        let wrapping = KernelScanObject(address: .max - 8, size: 100, allocatedAt: 0)
        let empty = KernelScanObject(address: Self.heap, size: 0, allocatedAt: 0)
        let nan = KernelScanObject(address: Self.heap + 0x1000, size: 8, allocatedAt: .nan)
        var v = scan(&scanner, [wrapping, empty, nan], [Self.data: .max - 1, Self.data + 8: Self.heap])
        #expect(v[wrapping.address]?.reachability == .reachable)
        #expect(v[empty.address]?.reachability == .reachable)
        #expect(v[nan.address]?.reachability == .directLeak && v[nan.address]?.holds == [.tooYoung])
        let older = KernelScanObject(address: Self.heap, size: 16, allocatedAt: 1), newer = KernelScanObject(address: Self.heap, size: 32, allocatedAt: 2)
        v = scan(&scanner, [newer, older], [:])
        #expect(v.count == 1 && v[Self.heap]?.object == newer)
        // Too many objects, or one too large: incomplete, nothing reported.
        var memory = KernelWords([:])
        var result = scanner.scan(objects: (1...4).map { Self.object($0) }, roots: Self.roots(), memory: &memory, now: 100, writtenFrames: nil)
        #expect(!result.complete && result.reported.isEmpty)
        result = scanner.scan(objects: [Self.object(9, size: 1 << 40)], roots: Self.roots(), memory: &memory, now: 100, writtenFrames: nil)
        #expect(!result.complete && result.reported.isEmpty)
        // Freed slots and roots that wrap or are empty.
        result = scanner.scan(objects: [Self.object(1)], roots: Self.roots([KernelRootRange(.max - 4096 ..< .max, .slabPage)]),
                              memory: &memory, freedSlots: [.max - 8: 1 << 40, 0: 0], now: 100, writtenFrames: [0])
        #expect(result.complete && result.verdicts.count == 1)
    }

    @Test func rangeSubtraction() {
        #expect(RangeSubtraction.subtract([10..<20, 15..<25, 40..<40], from: [0..<100]) == [0..<10, 25..<100])
        #expect(RangeSubtraction.subtract([0..<100], from: [10..<20, 30..<40]) == [])
        #expect(RangeSubtraction.subtract([5..<10, 50..<60], from: [0..<20, 40..<55, 70..<80]) == [0..<5, 10..<20, 40..<50, 70..<80])
        #expect(RangeSubtraction.subtract([], from: [0..<0, 1..<2]) == [1..<2])
        #expect(RangeSubtraction.merge([5..<10, 0..<5, 20..<30, 25..<26]) == [0..<10, 20..<30])
    }
}
