import AllocationLedger
import LeakAnalysis
import Reachability
import Testing

/// A rescan whose inputs did not change takes the last marking's result instead of marking again,
/// and marks again as soon as a pointer, a block the heuristics judged or a block of the ledger
/// changed: each rescan gives what a scan from nothing gives.
@Suite struct KeptMarkingTests {
    let heap = CraftedProcessGuest.heap, data = CraftedProcessGuest.data

    @Test func aRescanKeepsTheMarkingOnlyWhileItsInputsStand() throws {
        let process = try CraftedProcessGuest()
        let guest = CraftedInspectableGuest(process)
        let ledger = AllocationLedger()
        let clock = TrackerClock()
        let scanner = ReachabilityScanner(kernel: process.kernel, ledger: ledger, clock: clock, staleAfter: .max)
        try scanner.useWriteLog(of: guest)
        // A (root) → B (start pointer) → D; A → 8 bytes into C, whose first word makes length64 match.
        let (a, b, c, d) = (heap, heap + 0x1000, heap + 0x2000, heap + 0x3000)
        for (start, size) in [(a, 64), (b, 64), (c, 40), (d, 64)] as [(UInt64, UInt64)] {
            ledger.allocate(in: process.root, address: start, size: size, function: .malloc, stack: [0x40_1000], thread: 42,
                            time: clock.now)
        }
        func write(_ value: UInt64, at address: UInt64) throws {
            try process.putUser(value, at: address)
            guest.writeLog.markWritten([CraftedProcessGuest.frame(of: address)])
        }
        try write(a, at: data)
        try write(b, at: a + 8)
        try write(c + 8, at: a + 16)
        try write(32, at: c)
        try write(d, at: b)

        /// Rescans, checks the result against a scan from nothing, and returns whether it kept the marking.
        func rescan(_ step: String) throws -> (kept: Bool?, classes: [UInt64: ReachabilityClass]) {
            let scan = try #require(scanner.scanLiveProcesses(of: guest, pauseTimeout: 5).scans.first, "\(step)")
            let fresh = ReachabilityScanner(kernel: process.kernel, ledger: ledger, clock: clock, staleAfter: .max)
            let full = try #require(fresh.scanLiveProcesses(of: guest, pauseTimeout: 5).scans.first, "\(step)")
            let classes = scan.verdicts.mapValues(\.reachability)
            #expect(scan.complete && classes == full.verdicts.mapValues(\.reachability), "\(step)")
            #expect(scan.verdicts.mapValues(\.leader) == full.verdicts.mapValues(\.leader), "\(step)")
            return (scan.figures.markingKept, classes)
        }
        _ = try rescan("first scan")
        #expect(try rescan("first rescan").kept == false)
        let nothing = try rescan("nothing written")
        #expect(nothing.kept == true)
        #expect(nothing.classes == [a: .reachable, b: .reachable, c: .reachable, d: .reachable])
        // A word that is no pointer, in a block nothing judged: the graph stands.
        try write(7, at: b + 24)
        #expect(try rescan("a data word written").kept == true)
        // C's first word, which length64 judged: marked again, C is only possibly lost now.
        try write(31, at: c)
        let judged = try rescan("a judged block's first word written")
        #expect(judged.kept == false && judged.classes[c] == .possiblyLost)
        // B's pointer to D gone: marked again, D leaked.
        try write(0, at: b)
        let cut = try rescan("a pointer cleared")
        #expect(cut.kept == false && cut.classes[d] == .directLeak)
        #expect(try rescan("nothing written again").kept == true)
        // A block allocated where nothing points: the ledger changed, marked again.
        ledger.allocate(in: process.root, address: heap + 0x3800, size: 32, function: .malloc, stack: [0x40_1000], thread: 42,
                        time: clock.now)
        let grown = try rescan("a block allocated")
        #expect(grown.kept == false && grown.classes[heap + 0x3800] == .directLeak)
    }
}
