import AllocationLedger
import Foundation
import Reachability
import X86

/// What the allocation ledger costs per allocator event as the number of live blocks grows, on
/// the host alone (no guest): the bookkeeping each trapped allocation and release pays besides the
/// trap itself. Printed on stdout.
public struct LedgerBenchmark: Sendable {
    /// Live blocks before the timed events, one run per entry.
    public var liveBlockCounts: [Int]
    /// Release-and-allocate pairs timed at each size.
    public var pairs: Int

    public init(liveBlockCounts: [Int] = [1_000, 10_000, 100_000, 1_000_000], pairs: Int = 20_000) {
        self.liveBlockCounts = liveBlockCounts
        self.pairs = pairs
    }

    public func run() {
        say("== LeakVisor ledger benchmark (\(BuildKind.current) build): one space, \(pairs) release + allocate pairs at each size")
        let root = PageTableRoot(cr3: 0x1000)
        let stack: [UInt64] = [0x40_1000, 0x40_2000, 0x40_3000]
        for live in liveBlockCounts {
            let ledger = AllocationLedger()
            func address(_ i: Int) -> UInt64 { 0x10_0000 + UInt64(i) * 64 }
            for i in 0..<live {
                ledger.allocate(in: root, address: address(i), size: 48, function: .malloc, stack: stack, thread: 1, time: 1)
            }
            let started = ScanBudget.monotonicNanoseconds()
            for k in 0..<pairs {
                let i = (k &* 7919) % live
                ledger.release(in: root, address: address(i), function: .free, stack: stack, thread: 1, time: 2, strict: true)
                ledger.allocate(in: root, address: address(i), size: 48, function: .malloc, stack: stack, thread: 1, time: 3)
            }
            let elapsed = Double(ScanBudget.monotonicNanoseconds() - started)
            let memory = ledger.memoryUse()
            // A scan's verdicts for every block, recorded as a scan round does after its pause.
            var verdicts: [UInt64: BlockVerdict] = [:]
            for i in 0..<live {
                verdicts[address(i)] = BlockVerdict(reachability: i % 100 == 0 ? .directLeak : .reachable, leader: nil,
                                                    indirectBytes: 0, lastWritten: i % 2 == 0 ? 0 : 9)
            }
            let figures = ScanFigures(kind: "incremental", threads: 1, rootBytes: 0, bytesScanned: 0, pagesRead: 0, pagesReused: 0,
                                      pagesDirtied: 0, pauseSeconds: 0, totalSeconds: 0)
            let recordStarted = ScanBudget.monotonicNanoseconds()
            ledger.record(SpaceScan(time: 10, verdicts: verdicts, figures: figures, notes: []), for: root, staleAfter: 5)
            let recorded = Double(ScanBudget.monotonicNanoseconds() - recordStarted)
            // The next scan, given as its changes: 1% of the blocks written since (and no other block
            // turned stale: their verdicts say written at 0, stale at 10, or at 9, stale from 14).
            var changes: [(address: UInt64, verdict: BlockVerdict?)] = []
            for i in stride(from: 0, to: live, by: 100) {
                verdicts[address(i)]?.lastWritten = 11
                changes.append((address(i), verdicts[address(i)]))
            }
            let changedStarted = ScanBudget.monotonicNanoseconds()
            ledger.record(SpaceScan(time: 11, verdicts: verdicts, figures: figures, notes: [],
                                    verdictChanges: VerdictChanges(baseTime: 10, changes: changes)), for: root, staleAfter: 5)
            let changed = Double(ScanBudget.monotonicNanoseconds() - changedStarted)
            say(String(format: "%9d live blocks: %.2f µs per release + allocate pair (%.0f ns per event); %.0f bytes per block; recording a scan: %.2f ms counted from every block, %.2f ms from 1%% changed",
                       live, elapsed / Double(pairs) / 1000, elapsed / Double(2 * pairs), memory.bytesPerBlock, recorded / 1e6, changed / 1e6))
        }
    }
}
