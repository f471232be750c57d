import X86
import AllocationLedger
import AllocationTracing
import Foundation
import Introspection
import LeakAnalysis
import Testing

/// The ledger's bookkeeping: allocation, release, realloc moves, findings, retiring spaces, and
/// the report built from it (grouping, order, text and JSON).
struct AllocationLedgerTests {
    let space = PageTableRoot(cr3: 0x1234_5000)

    @Test func releasesRemoveBlocksAndCountersFollow() {
        let ledger = AllocationLedger()
        ledger.allocate(in: space, address: 0x1000, size: 100, function: .malloc, stack: [1, 2], thread: 7, time: 10)
        ledger.allocate(in: space, address: 0x2000, size: 200, function: .calloc, stack: [1, 3], thread: 7, time: 20)
        #expect(ledger.release(in: space, address: 0x1000, function: .free, stack: [4], thread: 7, time: 30, strict: true)
                == .released(LiveBlock(size: 100, time: 10, stack: 0, thread: 7, function: .malloc)))
        #expect(ledger.release(in: space, address: 0, function: .free, stack: [4], thread: 7, time: 31, strict: true) == .null)
        let s = ledger.snapshot().spaces[0]
        #expect(s.blocks.keys.sorted() == [0x2000])
        #expect(s.counters.allocations == 2 && s.counters.releases == 1 && s.counters.nullReleases == 1)
        #expect(s.counters.liveBytes == 200 && s.counters.peakLiveBytes == 300 && s.counters.bytesAllocated == 300)
    }

    @Test func doubleUnknownAndMismatchedReleasesAreFindings() {
        let ledger = AllocationLedger()
        ledger.allocate(in: space, address: 0x1000, size: 8, function: .operatorNewArray, stack: [1], thread: 1, time: 1)
        #expect(ledger.release(in: space, address: 0x1000, function: .operatorDelete, stack: [2], thread: 1, time: 2, strict: true)
                == .released(LiveBlock(size: 8, time: 1, stack: 0, thread: 1, function: .operatorNewArray)))
        #expect(ledger.release(in: space, address: 0x1000, function: .free, stack: [3], thread: 1, time: 3, strict: true) == .finding(.doubleFree))
        #expect(ledger.release(in: space, address: 0x9000, function: .free, stack: [3], thread: 1, time: 4, strict: true) == .finding(.unknownFree))
        #expect(ledger.release(in: space, address: 0xA000, function: .free, stack: [3], thread: 1, time: 5, strict: false) == .null)
        // Reallocated after the free: a later free is normal again.
        ledger.allocate(in: space, address: 0x1000, size: 16, function: .malloc, stack: [1], thread: 1, time: 6)
        #expect(ledger.release(in: space, address: 0x1000, function: .free, stack: [3], thread: 1, time: 7, strict: true)
                == .released(LiveBlock(size: 16, time: 6, stack: 0, thread: 1, function: .malloc)))
        let kinds = ledger.snapshot().spaces[0].findings.map(\.kind)
        #expect(kinds == [.mismatchedRelease, .doubleFree, .unknownFree])
        #expect(ledger.snapshot().spaces[0].findings[0].allocatedBy == .operatorNewArray)
    }

    @Test func retiredSpacesKeepTheirBlocksAndANewSpaceStartsEmpty() {
        let ledger = AllocationLedger()
        ledger.identify(space, as: ProcessIdentity(pid: 42, command: "prog"), modules: [])
        ledger.allocate(in: space, address: 0x1000, size: 100, function: .malloc, stack: [1], thread: 42, time: 1)
        ledger.retire(space, as: .exited, time: 5)
        ledger.allocate(in: space, address: 0x1000, size: 7, function: .malloc, stack: [1], thread: 43, time: 6)
        let spaces = ledger.snapshot().spaces
        #expect(spaces.count == 2)
        #expect(spaces[0].end == .exited && spaces[0].identity?.pid == 42 && spaces[0].blocks[0x1000]?.size == 100)
        #expect(spaces[1].end == .live && spaces[1].identity == nil && spaces[1].blocks[0x1000]?.size == 7)
        ledger.retireAll(as: .guestStopped, time: 9)
        #expect(ledger.snapshot().spaces.map(\.end) == [.exited, .guestStopped])
    }

    @Test func aLiveBlockCostsOneDictionaryBucketOf32Bytes() {
        #expect(MemoryLayout<LiveBlock>.stride == 24)
        #expect(LiveBlock(size: 1 << 40, time: 0, stack: 0, thread: 0, function: .operatorDeleteArray).size == 1 << 40)
        #expect(LiveBlock(size: 1 << 40, time: 0, stack: 0, thread: 0, function: .operatorDeleteArray).function == .operatorDeleteArray)
        let ledger = AllocationLedger()
        for i in 0..<50_000 {
            ledger.allocate(in: space, address: UInt64(i) * 32, size: 32, function: .malloc, stack: [1, UInt64(i % 10)],
                            thread: 1, time: 0)
        }
        let use = ledger.memoryUse()
        #expect(use.blocks == 50_000 && use.stacks == 10 && use.stackFrameBytes == 160)
        // 50,000 blocks fill 131,072 buckets of 32 bytes (Swift keeps its load in (3/8, 3/4]).
        #expect(use.blockStorageBytes == 131_072 * 32 + 131_072 / 8)
        #expect(use.bytesPerBlock > 32 / 0.75 && use.bytesPerBlock <= 32 / 0.375 + 1, "\(use.bytesPerBlock) bytes per block")
    }

    @Test func theReportGroupsByStackLargestFirstAndRendersLikeLeakSanitizer() throws {
        let ledger = AllocationLedger()
        ledger.identify(space, as: ProcessIdentity(pid: 42, command: "prog"), modules: [])
        for i in 0..<3 {
            ledger.allocate(in: space, address: 0x1000 + UInt64(i) * 64, size: 32, function: .malloc, stack: [0x10, 0x20],
                            thread: 42, time: UInt64(i) * 1_000_000_000)
        }
        ledger.allocate(in: space, address: 0x9000, size: 500, function: .operatorNewArray, stack: [0x30, 0x40], thread: 43, time: 0)
        ledger.allocate(in: space, address: 0xA000, size: 1, function: .calloc, stack: [0x50, 0x60], thread: 42, time: 0)
        ledger.retire(space, as: .exited, time: 5)
        let report = LeakReportBuilder(files: GuestSymbolFiles()).build(ledger.snapshot(), seconds: 10)
        var unscanned = ClassTotals()
        unscanned.notScanned = BlockTotal(blocks: 5, bytes: 597)
        #expect(report.summary == LeakReport.Summary(outstandingBlocks: 5, outstandingBytes: 597, allocationSites: 3,
                                                      processes: 1, findings: 0, classes: unscanned))
        let groups = report.processes[0].groups
        #expect(groups.map(\.bytes) == [500, 96, 1])
        #expect(groups.map(\.function) == [.operatorNewArray, .malloc, .calloc])
        #expect(groups[1].blocks == 3 && groups[1].sizes == [32, 32, 32] && groups[1].oldestSeconds == 0 && groups[1].newestSeconds == 2)
        #expect(groups[0].frames.map(\.pc) == [0x30, 0x40])
        let text = LeakReportText.render(report)
        #expect(text.contains("==42== LeakVisor: prog (pid 42, exited): 597 byte(s) outstanding in 5 allocation(s)"))
        #expect(text.contains("Outstanding: 500 byte(s) in 1 object(s) allocated by operator new[], age 10.0 s, thread 43, from:\n    #0 0x30\n    #1 0x40\n"))
        #expect(text.contains("Outstanding: 96 byte(s) in 3 object(s) allocated by malloc (sizes 32, 32, 32), age 8.0 s to 10.0 s, thread 42"))
        #expect(text.hasSuffix("SUMMARY: LeakVisor: 597 byte(s) outstanding in 5 allocation(s) from 3 site(s) in 1 process(es);"
                               + " definitely lost: 0 byte(s) in 0 object(s); indirectly lost: 0 byte(s) in 0 object(s);"
                               + " possibly lost: 0 byte(s) in 0 object(s); still reachable: 0 byte(s) in 0 object(s);"
                               + " not scanned: 597 byte(s) in 5 object(s); 0 finding(s).\n"))
        let decoded = try JSONDecoder().decode(LeakReport.self, from: try JSONEncoder().encode(report))
        #expect(decoded == report)
    }

    @Test func reportFilesAreReplacedAtomically() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lv-report-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("report.json").path
        let report = LeakReportBuilder(files: GuestSymbolFiles()).build(AllocationLedger().snapshot(), seconds: 1)
        try ReportFile.writeJSON(report, to: path)
        try ReportFile.writeJSON(report, to: path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["report.json"])
        #expect(try JSONDecoder().decode(LeakReport.self, from: Data(contentsOf: URL(fileURLWithPath: path))) == report)
        #expect(throws: (any Error).self) { try ReportFile.writeJSON(report, to: directory.appendingPathComponent("no/such/dir.json").path) }
    }
}
