import X86
import AllocationLedger
import AllocationTracing
import Introspection
import LeakAnalysis
import Reachability
import Testing

/// Reports from a ledger with scan verdicts: groups split by class, LSan-style headlines, the
/// LEAK SUMMARY, and growth of referenced, stale allocation sites.
@Suite struct LeakReportClassesTests {
    static let space = PageTableRoot(cr3: 0x1000)
    static let second: UInt64 = 1_000_000_000

    func ledger(blocks: [(UInt64, UInt64, UInt64)]) -> AllocationLedger {
        let ledger = AllocationLedger()
        ledger.identify(Self.space, as: ProcessIdentity(pid: 42, command: "prog", executable: "/usr/bin/prog"), modules: [])
        for (address, size, site) in blocks {
            ledger.allocate(in: Self.space, address: address, size: size, function: .malloc, stack: [0x401000, site],
                            thread: 42, time: 0)
        }
        return ledger
    }

    func scan(at seconds: UInt64, _ verdicts: [UInt64: (ReachabilityClass, UInt64?, UInt64, UInt64)]) -> SpaceScan {
        SpaceScan(time: seconds * Self.second,
                  verdicts: verdicts.mapValues { BlockVerdict(reachability: $0.0, leader: $0.1, indirectBytes: $0.2, lastWritten: $0.3 * Self.second) },
                  figures: ScanFigures(kind: "at exit", threads: 1, rootBytes: 4096, bytesScanned: 8192, pagesRead: 2,
                                       pagesReused: 0, pagesDirtied: 0, pauseSeconds: 0, totalSeconds: 0),
                  notes: [])
    }

    @Test func groupsAreSplitByClassAndCountedInTheSummary() {
        let l = ledger(blocks: [(0x5000, 24, 0x402000), (0x5020, 24, 0x402100), (0x5040, 24, 0x402100),
                                (0x5100, 128, 0x402200), (0x5200, 48, 0x402300)])
        l.record(scan(at: 1, [0x5000: (.directLeak, nil, 48, 0), 0x5020: (.indirectLeak, 0x5000, 0, 0),
                              0x5040: (.indirectLeak, 0x5000, 0, 0), 0x5100: (.possiblyLost, nil, 0, 0),
                              0x5200: (.reachable, nil, 0, 1)]), for: Self.space, staleAfter: 10 * Self.second)
        let report = LeakReportBuilder(files: GuestSymbolFiles(roots: [])).build(l.snapshot(), seconds: 2)
        let groups = report.processes[0].groups
        #expect(groups.map(\.reachability) == [.directLeak, .indirectLeak, .possiblyLost, .reachable])
        #expect(groups[0].indirectBytes == 48)
        #expect(groups[1].blocks == 2)
        #expect(groups[1].details.map(\.address) == [0x5020, 0x5040])     // leaks list their blocks, oldest first
        #expect(groups[0].details == [BlockDetail(address: 0x5000, size: 24, allocatedSeconds: 0, lastWrittenSeconds: 0)])
        #expect(groups[3].details.isEmpty)                                  // reachable ones do not
        let c = report.summary.classes
        #expect(c.definitelyLost == BlockTotal(blocks: 1, bytes: 24))
        #expect(c.indirectlyLost == BlockTotal(blocks: 2, bytes: 48))
        #expect(c.possiblyLost == BlockTotal(blocks: 1, bytes: 128))
        #expect(c.stillReachable == BlockTotal(blocks: 1, bytes: 48))
        #expect(c.notScanned == BlockTotal())
        let text = LeakReportText.render(report)
        #expect(text.contains("Direct leak of 72 (24 direct, 48 indirect) byte(s) in 1 object(s) allocated by malloc"))
        #expect(text.contains("Indirect leak of 48 byte(s) in 2 object(s)"))
        #expect(text.contains("Possibly lost: 128 byte(s) in 1 object(s)"))
        #expect(!text.contains("Still reachable"))
        #expect(LeakReportText.render(report, showReachable: true).contains("Still reachable: 48 byte(s) in 1 object(s)"))
        #expect(text.contains("LEAK SUMMARY: definitely lost: 24 byte(s) in 1 object(s); indirectly lost: 48 byte(s) in 2 object(s);"
                              + " possibly lost: 128 byte(s) in 1 object(s); still reachable: 48 byte(s) in 1 object(s)"))
    }

    @Test func blocksAllocatedAfterTheLastScanAreNotScanned() {
        let l = ledger(blocks: [(0x5000, 24, 0x402000)])
        l.record(scan(at: 1, [0x5000: (.reachable, nil, 0, 1)]), for: Self.space, staleAfter: Self.second)
        l.allocate(in: Self.space, address: 0x6000, size: 32, function: .malloc, stack: [0x401000, 0x402000], thread: 42, time: 0)
        let report = LeakReportBuilder(files: GuestSymbolFiles(roots: [])).build(l.snapshot(), seconds: 2)
        #expect(report.summary.classes.notScanned == BlockTotal(blocks: 1, bytes: 32))
        #expect(LeakReportText.render(report).contains("not scanned: 32 byte(s) in 1 object(s)"))
    }

    @Test func aGrowingStaleReferencedSiteIsFlaggedAndAHotOneIsNot() {
        let l = ledger(blocks: [])
        var cold: [UInt64] = []
        let hot: [UInt64] = [0x9000, 0x9100]
        for h in hot { l.allocate(in: Self.space, address: h, size: 96, function: .malloc, stack: [0x401000, 0x403000], thread: 42, time: 0) }
        for tick in UInt64(1)...5 {
            for k in UInt64(0)..<4 {
                let a = 0x10000 + (tick * 4 + k) * 0x40
                cold.append(a)
                l.allocate(in: Self.space, address: a, size: 64, function: .malloc, stack: [0x401000, 0x404000], thread: 42,
                           time: tick * 10 * Self.second)
            }
            var verdicts: [UInt64: (ReachabilityClass, UInt64?, UInt64, UInt64)] = [:]
            // Cold entries are written once, when allocated; hot ones at every scan.
            for (i, a) in cold.enumerated() { verdicts[a] = (.reachable, nil, 0, (UInt64(i / 4) + 1) * 10) }
            for h in hot { verdicts[h] = (.reachable, nil, 0, tick * 10 + 5) }
            l.record(scan(at: tick * 10 + 5, verdicts), for: Self.space, staleAfter: 15 * Self.second)
        }
        let report = LeakReportBuilder(files: GuestSymbolFiles(roots: [])).build(l.snapshot(), seconds: 60)
        let growth = report.processes[0].growth
        #expect(growth.count == 1)
        #expect(growth.first?.firstBlocks == 4)
        #expect(growth.first?.lastBlocks == 20)
        #expect(growth.first?.scans == 5)
        #expect(growth.first?.frames.last?.pc == 0x404000)
        #expect(LeakReportText.render(report).contains("Growing while referenced: 256 -> 1280 byte(s) (4 -> 20 object(s)) over 5 scans"))
    }
}
