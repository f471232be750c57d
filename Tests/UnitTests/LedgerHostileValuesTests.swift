@testable import AllocationLedger
import X86
import AllocationTracing
import Foundation
import Introspection
import LeakAnalysis
import Reachability
import Testing

/// Guest-supplied block addresses and sizes can be anything: the ledger refuses blocks that do not
/// fit in user space, and every total a report makes of the rest saturates instead of trapping.
@Suite struct LedgerHostileValuesTests {
    let space = PageTableRoot(cr3: 0x1000)
    let saturated = "≥18446744073709551615"

    func report(_ ledger: AllocationLedger) -> LeakReport {
        LeakReportBuilder(files: GuestSymbolFiles()).build(ledger.snapshot(), seconds: 1)
    }

    /// The forged result (64 KiB at 0xfffffffffffff000), and the other ways a block can
    /// fail to fit: an end that wraps, an end past user space, a size over the ledger's 56 bits.
    @Test func blocksOutsideUserSpaceAreRefusedAndReported() throws {
        let ledger = AllocationLedger()
        ledger.identify(space, as: ProcessIdentity(pid: 7, command: "forger"), modules: [])
        let forged: [(UInt64, UInt64)] = [(0xFFFF_FFFF_FFFF_F000, 0x1_0000), (0x7FFF_FFFF_0000, 0x1_0000),
                                          (0xFFFF_8880_0000_0000, 16), (0x5555_0000_0000, 1 << 56), (UInt64.max, 1)]
        for (address, size) in forged {
            #expect(ledger.allocate(in: space, address: address, size: size, function: .malloc, stack: [0x401000],
                                    thread: 7, time: 1) == .refused)
        }
        // The last byte of user space is fine; one more is not.
        #expect(ledger.allocate(in: space, address: UserSpace.end - 16, size: 16, function: .malloc, stack: [0x401000],
                                thread: 7, time: 1) == .recorded)
        #expect(ledger.allocate(in: space, address: UserSpace.end - 16, size: 17, function: .malloc, stack: [0x401000],
                                thread: 7, time: 1) == .refused)
        #expect(ledger.liveBlocks(of: space).keys.sorted() == [UserSpace.end - 16])
        let snapshot = ledger.snapshot()
        #expect(snapshot.spaces[0].counters.refusedBlocks == 6)
        #expect(snapshot.spaces[0].counters.allocations == 1)
        let r = report(ledger)
        let findings = r.processes[0].findings
        #expect(findings.count == 6 && findings.allSatisfy { $0.kind == .implausibleBlock })
        #expect(findings[0].address == 0xFFFF_FFFF_FFFF_F000 && findings[0].size == 0x1_0000)
        #expect(r.processes[0].refusedBlocks == 6)
        #expect(r.notes.contains("6 implausible allocation result(s) refused (end past user space or wrapping)"))
        let text = LeakReportText.render(r)
        #expect(text.contains("Implausible allocation result of 0xfffffffffffff000 (65536 byte(s)) by malloc, thread 7"))
        #expect(try JSONDecoder().decode(LeakReport.self, from: try JSONEncoder().encode(r)) == r)
    }

    /// 257 blocks of 2^56 bytes (kept as 2^56 − 1 in 56 bits) add up past 2^64: every total
    /// saturates, the text says "≥", the JSON holds 2^64 − 1 and a note says what it means.
    @Test func twoHundredFiftySevenBlocksOfTwoToTheFiftySixSaturateInTextAndJSON() throws {
        var space = AddressSpaceLedger(pageTableRoot: self.space)
        space.identity = ProcessIdentity(pid: 9, command: "huge")
        for i in 0..<257 {
            space.insert(0x1000 + UInt64(i) * 0x1000, LiveBlock(size: 1 << 56, time: 0, stack: 0, thread: 9, function: .malloc))
        }
        #expect(space.counters.bytesAllocated == .max)
        #expect(space.counters.liveBytes == .max && space.counters.peakLiveBytes == .max)
        // Releasing brings the exact live total back under 2^64 (it is kept wide, not wrapped).
        for i in 0..<2 { _ = space.remove(0x1000 + UInt64(i) * 0x1000, stack: 0) }
        #expect(space.counters.liveBytes == UInt64(255) * ((1 << 56) - 1))
        for i in 0..<2 { space.insert(0x1000 + UInt64(i) * 0x1000, LiveBlock(size: 1 << 56, time: 0, stack: 0, thread: 9, function: .malloc)) }
        // A scan that calls one of them a direct leak leading to all the others.
        var verdicts: [UInt64: BlockVerdict] = [:]
        for i in 0..<257 {
            verdicts[0x1000 + UInt64(i) * 0x1000] = BlockVerdict(reachability: i == 0 ? .directLeak : .indirectLeak,
                                                                 leader: i == 0 ? nil : 0x1000, indirectBytes: i == 0 ? .max : 0,
                                                                 lastWritten: 0)
        }
        space.record(SpaceScan(time: 0, verdicts: verdicts,
                               figures: ScanFigures(kind: "at exit", threads: 1, rootBytes: 0, bytesScanned: .max, pagesRead: 0,
                                                    pagesReused: 0, pagesDirtied: 0, pauseSeconds: 0, totalSeconds: 0),
                               notes: []), staleAfter: 1)
        let r = LeakReportBuilder(files: GuestSymbolFiles()).build(LedgerSnapshot(spaces: [space], stacks: [[0x401000]]), seconds: 1)
        #expect(r.summary.outstandingBytes == .max)
        #expect(r.processes[0].outstandingBytes == .max)
        #expect(r.summary.classes.indirectlyLost == BlockTotal(blocks: 256, bytes: 256 * ((1 << 56) - 1)))   // 2^64 − 256: fits
        #expect(r.summary.classes.definitelyLost == BlockTotal(blocks: 1, bytes: (1 << 56) - 1))
        #expect(r.notes.contains { $0.contains("are lower bounds") })
        let text = LeakReportText.render(r)
        #expect(text.contains("huge (pid 9, live)"))
        #expect(text.contains("\(saturated) byte(s) outstanding in 257 allocation(s)"))
        #expect(text.contains("Direct leak of \(saturated) (72057594037927935 direct, \(saturated) indirect) byte(s) in 1 object(s)"))
        #expect(text.contains("Indirect leak of 18446744073709551360 byte(s) in 256 object(s)"))
        #expect(text.contains("SUMMARY: LeakVisor: \(saturated) byte(s) outstanding"))
        #expect(text.contains("leakvisor: note: some byte totals reached 2^64 - 1"))
        let json = String(decoding: try JSONEncoder().encode(r), as: UTF8.self)
        #expect(json.contains("\"outstandingBytes\":18446744073709551615"))
        #expect(try JSONDecoder().decode(LeakReport.self, from: Data(json.utf8)) == r)
    }

    /// The same overflow through the public ledger with blocks that do fit in user space:
    /// 2^17 + 1 blocks of 2^47 − 2^22 − 4096 bytes.
    @Test func plausibleBlocksWhoseTotalPassesTwoToTheSixtyFourSaturate() throws {
        let ledger = AllocationLedger()
        let size: UInt64 = UserSpace.end - (1 << 22)
        var recorded = 0
        for i in 0..<((1 << 17) + 1) {
            let outcome = ledger.allocate(in: space, address: 0x1000 + UInt64(i) * 16, size: size, function: .malloc,
                                          stack: [0x401000], thread: 1, time: 0)
            if outcome == .recorded { recorded += 1 }
        }
        #expect(recorded == (1 << 17) + 1)
        let r = report(ledger)
        #expect(r.summary.outstandingBytes == .max && r.processes[0].groups[0].bytes == .max)
        #expect(r.processes[0].bytesAllocated == .max)
        #expect(LeakReportText.render(r).contains("Outstanding: \(saturated) byte(s) in 131073 object(s)"))
    }

    @Test func saturatingHelpers() {
        #expect(UInt64.max.addingSaturated(1) == .max)
        #expect(UInt64(5).addingSaturated(6) == 11)
        #expect(UInt64.saturatedSum([UInt64.max / 2, UInt64.max / 2, 2]) == .max)
        #expect(Range<UInt64>.ordered(5, 4) == nil && Range<UInt64>.ordered(4, 5) == 4..<5)
        #expect(Range<UInt64>.clamped(start: .max - 1, count: 10) == (UInt64.max - 1)..<UInt64.max)
        #expect(UserSpace.clip(0x1000..<UInt64.max) == 0x1000..<UserSpace.end)
        #expect(UserSpace.clip(UInt64.max - 1..<UInt64.max).isEmpty)
        #expect(ScanLimits.nanoseconds(.infinity) == .max && ScanLimits.nanoseconds(.nan) == 0 && ScanLimits.nanoseconds(-1) == 0)
    }
}
