import AllocationLedger
import GuestMemory
@testable import LeakAnalysis
import Reachability
import Testing
import X86

/// Incremental scans give what a scan from nothing gives: over a crafted process whose heap and
/// ledger change at random between scans (words written, blocks allocated where stale pointers
/// already point, blocks freed), the scanner that keeps frames and references between scans and a
/// new scanner that reads everything agree on every block's class, leader and indirect bytes.
/// With `afterPause`, the process also changes between a rescan's concurrent phase and its pause,
/// and as soon as the pause ends, before the rescan's marking runs: the rescan still gives what a
/// scan from nothing gave at the pause.
@Suite struct IncrementalScanEquivalenceTests {
    /// The heap is 16 KiB; blocks start on 64-byte slots and are at most 56 bytes long.
    static let slots = 256

    struct Verdict: Equatable, CustomStringConvertible {
        var reachability: ReachabilityClass
        var leader: UInt64?
        var indirectBytes: UInt64
        var description: String { "\(reachability) \(leader.map { String($0, radix: 16) } ?? "-") \(indirectBytes)" }
    }

    static func verdicts(_ scan: SpaceScan?) -> [UInt64: Verdict] {
        (scan?.verdicts ?? [:]).mapValues { Verdict(reachability: $0.reachability, leader: $0.leader, indirectBytes: $0.indirectBytes) }
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64], [false, true])
    func randomChangesGiveTheResultOfAFreshScan(seed: UInt64, afterPause: Bool) throws {
        var random = DeterministicRandom(seed: seed)
        let process = try CraftedProcessGuest()
        let guest = CraftedInspectableGuest(process)
        let ledger = AllocationLedger()
        let clock = TrackerClock()
        let incremental = ReachabilityScanner(kernel: process.kernel, ledger: ledger, clock: clock, staleAfter: .max)
        try incremental.useWriteLog(of: guest)
        var live: [UInt64: UInt64] = [:]     // start → size
        func slot(_ k: UInt64) -> UInt64 { CraftedProcessGuest.heap + 64 * (k % UInt64(Self.slots)) }
        /// A word worth writing: a pointer to a slot's start or into it, or a small integer.
        func word() -> UInt64 {
            switch random.next() % 4 {
            case 0, 1: return slot(random.next())
            case 2: return slot(random.next()) + 8 * (1 + random.next() % 6)
            default: return random.next() % 4096
            }
        }
        func write(_ value: UInt64, at address: UInt64) throws {
            try process.putUser(value, at: address)
            guest.writeLog.markWritten([CraftedProcessGuest.frame(of: address)])
        }
        func allocate(_ start: UInt64) {
            guard live[start] == nil else { return }
            let size = 8 * (1 + random.next() % 7)
            live[start] = size
            ledger.allocate(in: process.root, address: start, size: size, function: .malloc, stack: [0x40_1000], thread: 42,
                            time: clock.now)
        }
        for _ in 0..<60 { allocate(slot(random.next())) }
        for (start, size) in live {
            for k in 0..<size / 8 where random.next() % 3 == 0 { try write(word(), at: start + 8 * k) }
        }
        for k in 0..<16 { try write(word(), at: CraftedProcessGuest.data + 8 * UInt64(k)) }

        var reused = 0, resolved = 0, markedAfterPause = 0
        /// One to four changes, each of a random kind.
        func change() throws {
            for _ in 0...(random.next() % 4) {
                switch random.next() % 6 {
                case 0, 1:
                    if let (start, size) = live.randomElement(using: &random) {
                        try write(word(), at: start + 8 * (random.next() % (size / 8)))
                    }
                case 2:
                    try write(word(), at: CraftedProcessGuest.data + 8 * (random.next() % 16))
                case 3:
                    allocate(slot(random.next()))
                case 4:
                    if let (start, _) = live.randomElement(using: &random) {
                        live[start] = nil
                        ledger.release(in: process.root, address: start, function: .free, stack: [0x40_1000], thread: 42,
                                       time: clock.now, strict: true)
                    }
                default:
                    break   // nothing changed: a rescan from the cache alone
                }
            }
        }
        for round in 0..<40 {
            try change()
            let fresh = ReachabilityScanner(kernel: process.kernel, ledger: ledger, clock: clock, staleAfter: .max)
            var full: SpaceScan?
            if afterPause {
                // Changed between the concurrent phase and the pause too.
                guest.beforePause = { try change() }
                // Scanned from nothing at the incremental scan's pause, then changed at once.
                guest.afterPause = {
                    full = fresh.scanLiveProcesses(of: guest, pauseTimeout: 5).scans.first
                    try change()
                    // Every other time, the writes are harvested before the marking (as an exit
                    // scan of another process would): the rescan's table must take them after it.
                    if round % 2 == 1 { incremental.state.withLock { incremental.harvest(&$0) } }
                }
            }
            let kept = incremental.scanLiveProcesses(of: guest, pauseTimeout: 5).scans.first
            if !afterPause { full = fresh.scanLiveProcesses(of: guest, pauseTimeout: 5).scans.first }
            #expect(kept?.complete == true && full?.complete == true)
            let (a, b) = (Self.verdicts(kept), Self.verdicts(full))
            let differing = Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted()
                .map { "\(String($0, radix: 16)): kept \(a[$0].map(String.init(describing:)) ?? "none"), fresh \(b[$0].map(String.init(describing:)) ?? "none")" }
            #expect(!a.isEmpty && differing.isEmpty, "seed \(seed), round \(round): \(differing)")
            if round > 0 { #expect(kept?.figures.kind == "incremental") }
            if kept?.figures.markedAfterPause == true { markedAfterPause += 1 }
            reused += kept?.figures.blocksReused ?? 0
            resolved += kept?.figures.blocksResolved ?? 0
        }
        // Most blocks' references were kept from one scan to the next.
        // (Changed twice as often with `afterPause`: more is resolved again, and a rescan that would
        // read more than half of the blocks does it in the pause.)
        #expect(reused > (afterPause ? 1 : 2) * resolved, "reused \(reused), resolved \(resolved)")
        // Most rescans were marked after their pause (how many varies: the changes pick blocks
        // through a dictionary, whose order differs from run to run).
        #expect(markedAfterPause > (afterPause ? 12 : 25), "\(markedAfterPause) of 39 rescans marked after the pause")
    }
}

extension DeterministicRandom: RandomNumberGenerator {}
