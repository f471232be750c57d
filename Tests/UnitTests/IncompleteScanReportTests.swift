import X86
import AllocationLedger
import AllocationTracing
import Foundation
import Introspection
import LeakAnalysis
import Reachability
import Testing

/// A scan cut short by its limits: its unproven blocks are not classified (never leaks), the
/// report says the scan was incomplete, and it adds nothing to the growth history.
@Suite struct IncompleteScanReportTests {
    static let space = PageTableRoot(cr3: 0x1000)

    func figures() -> ScanFigures {
        ScanFigures(kind: "incremental", threads: 1, rootBytes: 4096, bytesScanned: 8192, pagesRead: 2, pagesReused: 0,
                    pagesDirtied: 0, pauseSeconds: 0, totalSeconds: 0)
    }

    @Test func unprovenBlocksAreNotLeaksAndTheReportSaysTheScanWasIncomplete() throws {
        let ledger = AllocationLedger()
        ledger.identify(Self.space, as: ProcessIdentity(pid: 5, command: "big"), modules: [])
        for (i, address) in [0x5000, 0x6000, 0x7000].enumerated() {
            ledger.allocate(in: Self.space, address: UInt64(address), size: 64, function: .malloc,
                            stack: [0x401000, 0x402000 + UInt64(i)], thread: 5, time: 0)
        }
        // Only 0x5000 was proven reachable before the time limit.
        let scan = SpaceScan(time: 1_000_000_000,
                             verdicts: [0x5000: BlockVerdict(reachability: .reachable, leader: nil, indirectBytes: 0, lastWritten: 0)],
                             figures: figures(), notes: ["scan stopped at the scan time limit (60.0 s)"], complete: false)
        ledger.record(scan, for: Self.space, staleAfter: 1)
        #expect(ledger.snapshot().spaces[0].siteHistory.isEmpty)
        let report = LeakReportBuilder(files: GuestSymbolFiles()).build(ledger.snapshot(), seconds: 2)
        let process = try #require(report.processes.first)
        #expect(process.scan?.complete == false)
        #expect(report.summary.classes.definitelyLost == BlockTotal())
        #expect(report.summary.classes.stillReachable == BlockTotal(blocks: 1, bytes: 64))
        #expect(report.summary.classes.notScanned == BlockTotal(blocks: 2, bytes: 128))
        #expect(report.notes.contains("1 process(es) whose latest scan was incomplete: their blocks not proven reachable are not classified"))
        let text = LeakReportText.render(report)
        #expect(text.contains("==5== scan INCOMPLETE: 2 block(s) not classified (counted as not scanned, not as leaks)"))
        #expect(text.contains("==5== note: scan stopped at the scan time limit (60.0 s)"))
        #expect(!text.contains("Direct leak"))
        #expect(try JSONDecoder().decode(LeakReport.self, from: try JSONEncoder().encode(report)) == report)
    }

    /// A leak proven by a complete scan stays a leak when a later scan is cut short (an exit scan
    /// that hit its limit must not throw away what the periodic scans found).
    @Test func leaksAnEarlierCompleteScanProvedSurviveAnIncompleteOne() throws {
        let ledger = AllocationLedger()
        ledger.identify(Self.space, as: ProcessIdentity(pid: 5, command: "big"), modules: [])
        for address: UInt64 in [0x5000, 0x6000, 0x7000] {
            ledger.allocate(in: Self.space, address: address, size: 64, function: .malloc, stack: [0x401000, address], thread: 5, time: 0)
        }
        func verdict(_ c: ReachabilityClass) -> BlockVerdict { BlockVerdict(reachability: c, leader: nil, indirectBytes: 0, lastWritten: 0) }
        ledger.record(SpaceScan(time: 10, verdicts: [0x5000: verdict(.reachable), 0x6000: verdict(.directLeak), 0x7000: verdict(.directLeak)],
                                figures: figures(), notes: []), for: Self.space, staleAfter: 1)
        // 0x7000 is freed and its address reused after that scan: a new block, not the leaked one.
        ledger.release(in: Self.space, address: 0x7000, function: .free, stack: [1], thread: 5, time: 11, strict: true)
        ledger.allocate(in: Self.space, address: 0x7000, size: 64, function: .malloc, stack: [0x401000, 0x7000], thread: 5, time: 12)
        ledger.record(SpaceScan(time: 20, verdicts: [0x5000: verdict(.reachable)], figures: figures(), notes: [], complete: false),
                      for: Self.space, staleAfter: 1)
        let report = LeakReportBuilder(files: GuestSymbolFiles()).build(ledger.snapshot(), seconds: 30)
        #expect(report.summary.classes.definitelyLost == BlockTotal(blocks: 1, bytes: 64))
        #expect(report.summary.classes.stillReachable == BlockTotal(blocks: 1, bytes: 64))
        #expect(report.summary.classes.notScanned == BlockTotal(blocks: 1, bytes: 64))
        #expect(report.processes[0].groups.first { $0.reachability == .directLeak }?.details.map(\.address) == [0x6000])
        #expect(report.processes[0].scan?.notes.contains("1 block(s) keep the leak class an earlier complete scan proved") == true)
    }
}
