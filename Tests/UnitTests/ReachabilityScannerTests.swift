import Foundation
import AllocationLedger
import GuestInterface
import GuestMemory
@testable import Introspection
@testable import LeakAnalysis
import Reachability
import ReportFormats
import Testing
import X86

/// The scanner over a crafted guest, without /dev/kvm: real guest memory, real page tables, the
/// real kernel's layouts, real marking; only the pause and the page-write log are scripted.
/// One process (PID 42) with a data mapping (roots) and a heap holding three blocks:
/// `reachable` (pointed to from data), `leaked` (pointed to by nothing) and `indirect` (pointed
/// to only by `leaked`).
@Suite struct ReachabilityScannerTests {
    static let reachable = CraftedProcessGuest.heap + 0x100
    static let leaked = CraftedProcessGuest.heap + 0x1000
    static let indirect = CraftedProcessGuest.heap + 0x2000

    struct Setup {
        let process: CraftedProcessGuest
        let guest: CraftedInspectableGuest
        let ledger: AllocationLedger
        let scanner: ReachabilityScanner
    }

    func setup(limits: ScanLimits = ScanLimits()) throws -> Setup {
        let process = try CraftedProcessGuest()
        try process.putUser(Self.reachable, at: CraftedProcessGuest.data)
        try process.putUser(Self.indirect, at: Self.leaked)
        let ledger = AllocationLedger()
        let clock = TrackerClock()
        for (address, size) in [(Self.reachable, UInt64(32)), (Self.leaked, 64), (Self.indirect, 48)] {
            ledger.allocate(in: process.root, address: address, size: size, function: .malloc, stack: [0x40_1000],
                            thread: 42, time: clock.now)
        }
        let scanner = ReachabilityScanner(kernel: process.kernel, ledger: ledger, clock: clock, staleAfter: .max)
        scanner.limits = limits
        let guest = CraftedInspectableGuest(process)
        try scanner.useWriteLog(of: guest)
        return Setup(process: process, guest: guest, ledger: ledger, scanner: scanner)
    }

    func classes(_ scan: SpaceScan) -> [UInt64: ReachabilityClass] { scan.verdicts.mapValues(\.reachability) }

    @Test func aScanOfOneProcessFindsTheLeakTheBlockItLeadsToAndTheReachableOne() throws {
        let s = try setup()
        let round = s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5)
        let scan = try #require(round.scans.first)
        #expect(round.scans.count == 1)
        #expect(scan.complete)
        #expect(classes(scan) == [Self.reachable: .reachable, Self.leaked: .directLeak, Self.indirect: .indirectLeak])
        #expect(scan.verdicts[Self.leaked]?.indirectBytes == 48)
        #expect(scan.verdicts[Self.indirect]?.leader == Self.leaked)
        #expect(scan.figures.kind == "full")
        #expect(scan.figures.threads == 1)
        #expect(scan.figures.rootBytes == 0x2000)
        #expect(scan.figures.pagesReused == 0)
        // Both data pages, and the three blocks' pages (the leaks too: they are read to group them).
        #expect(scan.figures.pagesRead == 5)
        #expect(scan.notes.isEmpty)
        // The ledger keeps the scan for the space.
        let space = try #require(s.ledger.snapshot().spaces.first { $0.pageTableRoot == s.process.root })
        #expect(space.lastScan.map(classes) == classes(scan))
    }

    @Test func anIncrementalRescanRereadsOnlyTheFramesTheWriteLogReports() throws {
        let s = try setup()
        let first = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        #expect(first.figures.pagesRead == 5)

        // A write the log does not report is not seen: the cached words of that frame still hold.
        let secondPage = CraftedProcessGuest.data + 0x1000
        try s.process.putUser(Self.leaked, at: secondPage)
        let unreported = s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5)
        let second = try #require(unreported.scans.first)
        #expect(unreported.pagesRefreshed == 0)
        #expect(second.figures.kind == "incremental")
        // The roots' two pages come from the frame cache; the three blocks' references are kept.
        #expect(second.figures.pagesRead == 0 && second.figures.pagesReused == 2 && second.figures.pagesDirtied == 0)
        #expect(second.figures.blocksReused == 3 && second.figures.blocksResolved == 0)
        #expect(classes(second) == classes(first))

        // Reported: the concurrent phase reads that one frame again, the pause reuses the roots'
        // two frames and every block's references (no block lies on that frame).
        s.guest.writeLog.markWritten([CraftedProcessGuest.frame(of: secondPage)])
        let reported = s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5)
        let third = try #require(reported.scans.first)
        #expect(reported.pagesRefreshed == 1)
        #expect(third.figures.kind == "incremental")
        #expect(third.figures.pagesRead == 0 && third.figures.pagesReused == 2 && third.figures.pagesDirtied == 1)
        #expect(third.figures.blocksReused == 3 && third.figures.blocksResolved == 0)
        #expect(classes(third) == [Self.reachable: .reachable, Self.leaked: .reachable, Self.indirect: .reachable])

        // With the cache forgotten, the next round reads everything again in its pause.
        try s.process.putUser(0, at: secondPage)
        s.scanner.forgetCache()
        let full = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        #expect(full.figures.kind == "full" && full.figures.pagesRead == 5)
        #expect(classes(full) == classes(first))
    }

    @Test func aPauseThatFailsGivesNoVerdictsAndTheNextRoundScans() throws {
        let s = try setup()
        s.guest.failPauses(true)
        let round = s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5)
        #expect(round.scans.isEmpty)
        #expect(s.guest.pauseCount == 0)
        #expect(s.ledger.snapshot().spaces.allSatisfy { $0.lastScan == nil })
        s.guest.failPauses(false)
        let next = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        #expect(next.complete && classes(next)[Self.leaked] == .directLeak)
    }

    @Test func aLostWriteLogMeansAFullScanThatSaysSo() throws {
        let s = try setup()
        _ = s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5)
        s.guest.writeLog.failHarvests(true)
        let scan = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        #expect(scan.figures.kind == "full" && scan.figures.pagesRead == 5)
        // Both harvests of the round (concurrent phase, pause) failed: the scan says so once.
        #expect(scan.notes == ["dirty log unavailable (write log lost (test)): full scan"])
        #expect(classes(scan)[Self.leaked] == .directLeak)
    }

    @Test func aScanThatReachesItsMemoryLimitIsIncompleteAndClassifiesOnlyWhatItProved() throws {
        // The second data page holds 512 pointer-like words: their candidates do not fit in 4 KiB.
        let s = try setup(limits: ScanLimits(memoryBytes: 4096))
        for slot in 0..<UInt64(512) { try s.process.putUser(0x5555_0000_0000 + slot * 8, at: CraftedProcessGuest.data + 0x1000 + slot * 8) }
        let scan = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        #expect(!scan.complete)
        #expect(classes(scan) == [Self.reachable: .reachable])
        #expect(scan.notes == [
            "scan stopped at the memory limit (0 MiB)",
            "the scan is incomplete: blocks it did not prove reachable are not classified (not reported as leaks)",
        ])
        let space = try #require(s.ledger.snapshot().spaces.first)
        #expect(space.lastScan?.complete == false)
    }

    @Test func aScanOfOneSpaceWithoutItsMappingsClassifiesOnlyProvenReachableBlocks() throws {
        // The scan of one space, called directly (as the exit hook does), with an mm whose maple
        // tree is unreadable: no memory roots, so nothing may be called a leak.
        let s = try setup()
        try s.process.crafted.put64(0xFFFF_8880_7FFF_F002, at: s.process.mm + UInt64(s.process.kernel.layout.mm.mapleRoot))
        let view = try KernelView(kernel: s.process.kernel, memory: s.process.memory, vcpus: s.process.vcpus)
        let task = try view.task(at: s.process.task)
        let scan = try #require(s.scanner.scan(space: s.process.root, mm: s.process.mm, threads: [task], view: view,
                                              current: try view.currentTasks(), kind: "at exit"))
        #expect(scan.figures.kind == "at exit")
        #expect(scan.verdicts.isEmpty)
        #expect(scan.notes.first?.hasPrefix("roots could not be collected (") == true)
    }

    @Test func aThreadWithoutRegistersIsATypedMissingThreadAndANote() throws {
        // Not on a vCPU (no current task given) and no kernel stack: its registers are nowhere.
        let s = try setup()
        let view = try KernelView(kernel: s.process.kernel, memory: s.process.memory, vcpus: s.process.vcpus)
        let task = try view.task(at: s.process.task)
        let space = AddressSpace(memory: s.process.memory, root: s.process.root, mode: view.mode)
        let roots = try ProcessRoots().collect(view: view, mm: s.process.mm, threads: [task], current: [:], space: space)
        let missing = try #require(roots.missingThreads.first)
        guard case .noUserContext(42, "no kernel stack") = missing.error else {
            Issue.record("unexpected error \(missing.error)")
            return
        }
        let note = "thread 42: no user-space context for PID 42: no kernel stack"
        #expect(missing.description == note)
        let scan = try #require(s.scanner.scan(space: s.process.root, mm: s.process.mm, threads: [task], view: view,
                                              current: [:], kind: "at exit"))
        #expect(scan.notes == [note])
        #expect(scan.figures.threads == 0)
        // The mappings are still roots: the verdicts are those of a full scan.
        #expect(scan.complete)
        #expect(classes(scan) == [Self.reachable: .reachable, Self.leaked: .directLeak, Self.indirect: .indirectLeak])
    }

    @Test func aRoundTakesEachUserAddressSpaceOnceWithItsThreadsInMMOrder() {
        func task(_ pid: Int32, mm: UInt64, flags: UInt32 = 0) -> GuestTask {
            GuestTask(address: 0xFFFF_8880_0000_0000 + UInt64(pid) << 12, pid: pid, tgid: pid, parentTGID: 1, name: "t\(pid)",
                      state: "S", flags: flags, mm: mm, stack: 0)
        }
        let (mmA, mmB): (UInt64, UInt64) = (0xFFFF_8880_0001_0000, 0xFFFF_8880_0002_0000)
        let tasks = [task(1, mm: mmB), task(2, mm: 0), task(3, mm: mmA), task(4, mm: mmB),
                     task(5, mm: mmA, flags: 0x0020_0000)]  // a kernel thread borrowing an mm
        let spaces = ReachabilityScanner.userAddressSpaces(among: tasks)
        #expect(spaces.map(\.mm) == [mmA, mmB])
        #expect(spaces.map { $0.threads.map(\.pid) } == [[3], [1, 4]])
    }

    @Test func aBlockIsDatedByTheLastHarvestThatReportedItsFrameWritten() throws {
        let s = try setup()
        let allocated = try #require(s.ledger.snapshot().spaces.first?.blocks).mapValues(\.time)
        let first = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        // Nothing reported written yet: each block's last write is its allocation.
        #expect(first.verdicts.mapValues(\.lastWritten) == allocated)
        s.guest.writeLog.markWritten([CraftedProcessGuest.frame(of: Self.reachable)])
        let second = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        let written = try #require(second.verdicts[Self.reachable]?.lastWritten)
        #expect(try written > #require(allocated[Self.reachable]) && written <= second.time)
        #expect(second.verdicts[Self.leaked]?.lastWritten == allocated[Self.leaked])
        #expect(second.verdicts[Self.indirect]?.lastWritten == allocated[Self.indirect])
    }

    /// A write to a block's frame: that block alone is resolved again, and the change is seen.
    @Test func aRescanResolvesAgainOnlyTheBlocksOnWrittenFrames() throws {
        let s = try setup()
        let first = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        #expect(first.figures.blocksResolved == 3 && first.figures.blocksReused == 0)
        // `leaked` drops its pointer to `indirect`, which becomes a leak of its own.
        try s.process.putUser(0, at: Self.leaked)
        s.guest.writeLog.markWritten([CraftedProcessGuest.frame(of: Self.leaked)])
        let round = s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5)
        let second = try #require(round.scans.first)
        #expect(second.figures.kind == "incremental" && second.figures.markedAfterPause == true)
        // Resolved again while the guest ran (the concurrent phase), so the pause reads nothing.
        #expect(round.blocksResolvedAhead == 1 && second.figures.blocksResolved == 0 && second.figures.pagesRead == 0)
        #expect(classes(second) == [Self.reachable: .reachable, Self.leaked: .directLeak, Self.indirect: .directLeak])
    }

    /// A block allocated where a kept block already held a stale pointer: the kept references of
    /// that block are resolved again against the new index, so the new block is found referenced.
    @Test func aNewBlockWhereAKeptWordPointsIsFoundReferenced() throws {
        let s = try setup()
        let late = CraftedProcessGuest.heap + 0x3000
        try s.process.putUser(late, at: Self.leaked + 8)
        let first = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        #expect(classes(first) == [Self.reachable: .reachable, Self.leaked: .directLeak, Self.indirect: .indirectLeak])
        s.ledger.allocate(in: s.process.root, address: late, size: 16, function: .malloc, stack: [0x40_1000], thread: 42, time: 1)
        let second = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        // `leaked` (its miss now hits) and the new block are resolved; the other two are kept.
        #expect(second.figures.blocksResolved == 2 && second.figures.blocksReused == 2)
        #expect(classes(second) == [Self.reachable: .reachable, Self.leaked: .directLeak, Self.indirect: .indirectLeak,
                                    late: .indirectLeak])
        #expect(second.verdicts[Self.leaked]?.indirectBytes == 48 + 16)
        // A freed block: references to it are resolved again (the freed block is gone from them).
        _ = s.ledger.release(in: s.process.root, address: Self.indirect, function: .free, stack: [0x40_1000], thread: 42,
                             time: 2, strict: true)
        let third = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        #expect(third.figures.blocksResolved == 1 && third.figures.blocksReused == 2)
        #expect(classes(third) == [Self.reachable: .reachable, Self.leaked: .directLeak, late: .indirectLeak])
    }

    /// The heap's mapping moved to other frames (a page-table write the log reports): every block
    /// on it is checked, found translated elsewhere, and read again from the new frames.
    @Test func aChangedTranslationIsSeenThroughTheWrittenPageTable() throws {
        let s = try setup()
        _ = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        // A copy of the heap's 2 MiB page elsewhere, in which `leaked` no longer points at `indirect`.
        let moved: UInt64 = 0xA0_0000
        for offset in stride(from: UInt64(0), to: 0x4000, by: 8) {
            let word = try s.process.memory.load(UInt64.self, at: GuestPhysicalAddress(CraftedProcessGuest.heapPhysical + offset))
            try s.process.memory.store(word, at: GuestPhysicalAddress(moved + offset))
        }
        try s.process.memory.store(UInt64(0), at: GuestPhysicalAddress(moved + Self.leaked - CraftedProcessGuest.heap))
        let pd = CraftedProcessGuest.kernelWindowPhysical + CraftedProcessGuest.pdOffset
        try s.process.memory.store(moved | 0x87, at: GuestPhysicalAddress(pd + 8 * (CraftedProcessGuest.heap >> 21)))
        s.guest.writeLog.markWritten([pd >> 12])
        let round = s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5)
        let second = try #require(round.scans.first)
        #expect(round.blocksResolvedAhead == 3 && second.figures.blocksResolved == 0)
        #expect(classes(second) == [Self.reachable: .reachable, Self.leaked: .directLeak, Self.indirect: .directLeak])
    }

    /// A block freed after a scan and allocated again at the same address is a new block: the
    /// scan's verdict of the old one does not apply to it.
    @Test func aBlockAllocatedAfterTheScanWhereAJudgedOneWasHasNoVerdict() throws {
        let s = try setup()
        let scan = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        let before = try #require(s.ledger.snapshot().spaces.first?.blocks[Self.leaked])
        #expect(scan.verdict(of: Self.leaked, before)?.reachability == .directLeak)
        _ = s.ledger.release(in: s.process.root, address: Self.leaked, function: .free, stack: [0x40_1000], thread: 42,
                             time: scan.time + 1, strict: true)
        s.ledger.allocate(in: s.process.root, address: Self.leaked, size: 64, function: .malloc, stack: [0x40_1000], thread: 42,
                          time: scan.time + 2)
        let after = try #require(s.ledger.snapshot().spaces.first?.blocks[Self.leaked])
        #expect(scan.verdict(of: Self.leaked, after) == nil)
        #expect(scan.verdict(of: Self.reachable, try #require(s.ledger.snapshot().spaces.first?.blocks[Self.reachable]))?.reachability == .reachable)
    }

    /// A report made from an incremental scan's figures (blocks kept and resolved, the time of
    /// each step) is valid against the report schema.
    @Test(.enabled(if: JSONSchemaValidator.available, "needs python3-jsonschema (scripts/setup.sh)"))
    func aReportWithIncrementalScanFiguresValidatesAgainstTheSchema() throws {
        let s = try setup()
        _ = s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5)
        let rescan = try #require(s.scanner.scanLiveProcesses(of: s.guest, pauseTimeout: 5).scans.first)
        #expect(rescan.figures.blocksReused == 3 && rescan.figures.phases != nil)
        let report = LeakReportBuilder(files: GuestSymbolFiles()).build(s.ledger.snapshot(), seconds: 2)
        #expect(report.processes.first?.scan?.figures.blocksReused == 3)
        let schema = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/schemas/leak-report-v2.schema.json").path
        #expect(try JSONSchemaValidator.errors(try ReportRenderer.render(report, as: .json), schema: schema) == [])
    }
}
