import Testing
@testable import AllocationLedger
import Reachability
import X86

/// The site history counted from each scan's verdict changes (and the releases between scans)
/// equals the one counted from every live block at each scan.
@Suite struct SiteTallyTests {
    /// A deterministic generator (xorshift).
    struct Random {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return Int(state % UInt64(bound))
        }
    }

    static let figures = ScanFigures(kind: "incremental", threads: 1, rootBytes: 0, bytesScanned: 0, pagesRead: 0, pagesReused: 0,
                                     pagesDirtied: 0, pauseSeconds: 0, totalSeconds: 0)

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func changesGiveWhatEveryBlockGives(seed: UInt64) {
        var random = Random(state: 0x9E37_79B9_7F4A_7C15 &* seed)
        let space = PageTableRoot(cr3: 0x1000)
        let byChanges = AllocationLedger(), byBlocks = AllocationLedger()
        let staleAfter: UInt64 = 50
        var live: [UInt64: UInt64] = [:]          // address -> allocation time
        // The scanner's view: a verdict per address, and the allocation time of the block it judged.
        var map: [UInt64: BlockVerdict] = [:]
        var judged: [UInt64: UInt64] = [:]
        var lastScanTime: UInt64?
        var time: UInt64 = 1
        var applied = 0
        for round in 0..<120 {
            // The guest: allocations and releases (addresses reused), each at its own time.
            for _ in 0..<random.next(40) {
                time += 1
                let address = 0x10_0000 + UInt64(random.next(300)) * 64
                let stack: [UInt64] = [0x40_0000 + UInt64(random.next(5))]
                if live[address] != nil, random.next(2) == 0 {
                    for ledger in [byChanges, byBlocks] {
                        ledger.release(in: space, address: address, function: .free, stack: stack, thread: 1, time: time, strict: true)
                    }
                    live[address] = nil
                } else {
                    // An address already live stands for a missed release.
                    let size = UInt64(1 + random.next(4096))
                    for ledger in [byChanges, byBlocks] {
                        ledger.allocate(in: space, address: address, size: size, function: .malloc,
                                        stack: stack, thread: 1, time: time)
                    }
                    live[address] = time
                }
            }
            // A scan: a verdict for every block live now, most kept, some changed.
            time += UInt64(1 + random.next(30))
            let scanTime = time
            var next: [UInt64: BlockVerdict] = [:]
            var changes: [(address: UInt64, verdict: BlockVerdict?)] = []
            for (address, allocated) in live {
                let sameBlock = judged[address] == allocated
                var verdict = sameBlock ? map[address] : nil
                if verdict == nil || random.next(8) == 0 {
                    let classes: [ReachabilityClass] = [.reachable, .reachable, .possiblyLost, .directLeak, .indirectLeak]
                    verdict = BlockVerdict(reachability: classes[random.next(classes.count)], leader: nil, indirectBytes: 0,
                                           lastWritten: max(allocated, scanTime &- min(scanTime, UInt64(random.next(120)))))
                }
                next[address] = verdict
                // The scanner names a block judged anew even when its verdict equals the old one.
                if !sameBlock || verdict != map[address] { changes.append((address, verdict)) }
            }
            for address in map.keys where next[address] == nil { changes.append((address, nil)) }
            let complete = random.next(10) != 0
            let delta = lastScanTime.map { VerdictChanges(baseTime: $0, changes: changes) }
            let withChanges = random.next(12) == 0 ? nil : delta
            byChanges.record(SpaceScan(time: scanTime, verdicts: next, figures: Self.figures, notes: [], complete: complete,
                                       verdictChanges: withChanges), for: space, staleAfter: staleAfter)
            byBlocks.record(SpaceScan(time: scanTime, verdicts: next, figures: Self.figures, notes: [], complete: complete),
                            for: space, staleAfter: staleAfter)
            (map, judged, lastScanTime) = (next, live, scanTime)
            let a = byChanges.snapshot().spaces.first?.siteHistory ?? [:]
            let b = byBlocks.snapshot().spaces.first?.siteHistory ?? [:]
            #expect(a == b, "seed \(seed), round \(round)")
            if a != b { return }
            let tally = byChanges.snapshot().spaces.first?.siteTally?.tally
            if let tally, tally.scansApplied > 0, tally.scanTime == scanTime { applied += 1 }
        }
        // Most scans were brought in by their changes (not counted again from every block).
        #expect(applied > 60, "seed \(seed): \(applied) of 120 scans applied as changes")
        // The history is not empty: the test compared real samples, stale ones among them.
        let history = byBlocks.snapshot().spaces.first?.siteHistory ?? [:]
        #expect(history.values.contains { $0.contains { $0.blocks > 0 && $0.staleBlocks > 0 && $0.staleBlocks < $0.blocks } })
    }
}
