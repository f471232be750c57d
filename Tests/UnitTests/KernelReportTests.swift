import AllocationLedger
import Foundation
import GuestMemory
import Introspection
import LeakAnalysis
import Reachability
import ReportFormats
import Testing

/// The kernel section of a report made from a ledger and a scan, the vmalloc bookkeeping words a
/// scan ignores, and a write log shared by two scanners.
@Suite struct KernelReportTests {
    static let heap: UInt64 = 0xFFFF_8880_0100_0000
    static let vmalloc: UInt64 = 0xFFFF_C900_0001_0000
    static let data: UInt64 = 0xFFFF_FFFF_8200_0000

    @Test func aVmallocAreaIsNotReferencedByItsOwnBookkeeping() {
        // The area's vm_struct (a live slab object reachable from a global) records where the area
        // starts: with that word ignored, the area is a leak; another pointer to it still counts.
        let area = KernelScanObject(address: Self.vmalloc, size: 20480, allocatedAt: 0)
        let vmStruct = KernelScanObject(address: Self.heap, size: 64, allocatedAt: 0)
        var roots = KernelRootSet()
        roots.ranges = [KernelRootRange(Self.data..<Self.data + 0x100, .imageData)]
        roots.ignoredWords = [Self.heap + 8]
        var scanner = KernelLeakScanner(rules: KernelLeakRules(minimumAge: 0, consecutiveScans: 1))
        var memory = KernelWords([Self.data: Self.heap, Self.heap + 8: Self.vmalloc])
        var result = scanner.scan(objects: [area, vmStruct], roots: roots, memory: &memory, now: 10, writtenFrames: nil)
        #expect(result.verdicts.first { $0.object == area }?.reachability == .directLeak)
        #expect(result.verdicts.first { $0.object == vmStruct }?.reachability == .reachable)
        memory = KernelWords([Self.data: Self.heap, Self.heap + 8: Self.vmalloc, Self.heap + 16: Self.vmalloc + 100])
        result = scanner.scan(objects: [area, vmStruct], roots: roots, memory: &memory, now: 11, writtenFrames: nil)
        #expect(result.verdicts.first { $0.object == area }?.reachability == .reachable)
    }

    @Test func aCachedStackIsReferencedButItsStaleContentsAreNot() {
        // A cached stack (a tracked vmalloc object only its vm_struct names) holds the one pointer
        // to a leaked object: the stack is referenced, the object is a leak.
        let stack = KernelScanObject(address: Self.vmalloc, size: 16384, allocatedAt: 0)
        let leak = KernelScanObject(address: Self.heap, size: 64, allocatedAt: 0)
        var roots = KernelRootSet()
        roots.ranges = [KernelRootRange(Self.data..<Self.data + 0x100, .imageData)]
        roots.cachedStackRanges = [Self.vmalloc..<Self.vmalloc + 16384]
        var scanner = KernelLeakScanner(rules: KernelLeakRules(minimumAge: 0, consecutiveScans: 1))
        var memory = KernelWords([Self.vmalloc + 0x3F00: Self.heap])
        let result = scanner.scan(objects: [stack, leak], roots: roots, memory: &memory, now: 10, writtenFrames: nil)
        #expect(result.verdicts.first { $0.object == stack }?.reachability == .reachable)
        #expect(result.verdicts.first { $0.object == leak }?.reachability == .directLeak)
    }

    @Test func maskedWordsAreSkippedAtRangeEdgesToo() {
        let words: [UInt64: UInt64] = [Self.data: 1 | Self.heap, Self.data + 8: 2 | Self.heap, Self.data + 16: 3 | Self.heap]
        for (ignored, left) in [([Self.data], [2, 3]), ([Self.data + 16], [1, 2]), ([Self.data, Self.data + 8, Self.data + 16], []),
                                ([Self.data + 3, Self.data + 0x1000], [1, 2, 3])] as [([UInt64], [UInt64])] {
            var source = MaskedWordSource(KernelWords(words), ignoring: ignored)
            var seen: [UInt64] = []
            source.forEachCandidate(in: Self.data..<Self.data + 24) { seen.append($0 & 0xF) }
            #expect(seen == left, "ignoring \(ignored)")
        }
    }

    @Test func twoReadersOfOneWriteLogEachSeeEveryWrite() throws {
        let log = ScriptedWriteLog()
        let readers = WriteLogReaders(source: log)
        let user = readers.join(), kernel = readers.join()
        log.markWritten([1, 2])
        #expect(try user.harvest().frames == [1, 2])
        log.markWritten([3])
        #expect(try user.harvest().frames == [3])
        log.markWritten([4])
        #expect(try kernel.harvest().frames == [1, 2, 3, 4])
        #expect(try user.harvest().frames == [4])
        #expect(try kernel.harvest().frames == [])
        #expect(readers.leave(kernel) == 1)
        #expect(throws: WriteLogError.self) { try kernel.harvest() }
        #expect(readers.leave(user) == 0)
    }

    @Test func theReportGroupsReportedLeaksOnlyWithTheirCallSites() {
        let ledger = KernelObjectLedger()
        func allocate(_ address: UInt64, _ size: UInt64, site: UInt64, time: UInt64, _ allocator: KernelAllocator = .kmalloc) {
            _ = ledger.allocate(KernelAllocation(address: address, requestedSize: size - 8, allocatedSize: size, allocator: allocator,
                                                 callSite: site, stack: [site, 0xFFFF_FFFF_8100_0000], time: time))
        }
        allocate(Self.heap, 96, site: 0xFFFF_FFFF_C000_1000, time: 1_000_000_000)           // direct, head of a chain
        allocate(Self.heap + 0x100, 96, site: 0xFFFF_FFFF_C000_1000, time: 1_000_000_000)   // indirect
        allocate(Self.heap + 0x200, 64, site: 0xFFFF_FFFF_C000_2000, time: 2_000_000_000)   // held (too young)
        allocate(Self.heap + 0x300, 64, site: 0xFFFF_FFFF_C000_3000, time: 2_000_000_000)   // reachable
        allocate(Self.heap + 0x400, 64, site: 0xFFFF_FFFF_C000_3000, time: 3_000_000_000)   // newer than the scan
        let objects = ledger.liveObjects()
        func verdict(_ o: KernelObject, _ c: ReachabilityClass, reported: Bool, indirect: UInt64 = 0) -> KernelObjectVerdict {
            KernelObjectVerdict(object: KernelScanObject(address: o.address, size: o.allocatedSize, allocatedAt: Double(o.time) / 1e9),
                                reachability: c, leader: nil, indirectBytes: indirect, unreferencedScans: reported ? 3 : 1,
                                reported: reported, holds: reported ? [] : [.tooYoung])
        }
        let scan = KernelScanReport(seconds: 2.5, scans: 3, objects: 4, rootBytes: 1000, bytesScanned: 2000, writtenObjects: 0,
                                    pauseSeconds: 0.5, complete: true, problems: [])
        var verdicts = [verdict(objects[0], .directLeak, reported: true, indirect: 96), verdict(objects[1], .indirectLeak, reported: true),
                        verdict(objects[2], .directLeak, reported: false), verdict(objects[3], .reachable, reported: false)]
        // A verdict about an earlier object at the fifth object's address does not apply to it.
        verdicts.append(KernelObjectVerdict(object: KernelScanObject(address: objects[4].address, size: 64, allocatedAt: 0.5),
                                            reachability: .directLeak, leader: nil, indirectBytes: 0, unreferencedScans: 5, reported: true, holds: []))
        let builder = KernelReportBuilder { pc, _ in ReportFrame(pc: pc, function: pc >= 0xFFFF_FFFF_C000_0000 ? "lv_leak" : "caller") }
        let report = builder.build(ledger: ledger.snapshot(), latest: .init(verdicts: verdicts, report: scan), seconds: 4)
        #expect(report.outstandingObjects == 5 && report.outstandingBytes == 96 * 2 + 64 * 3)
        #expect(report.classes.definitelyLost == BlockTotal(blocks: 1, bytes: 96))
        #expect(report.classes.indirectlyLost == BlockTotal(blocks: 1, bytes: 96))
        #expect(report.classes.stillReachable == BlockTotal(blocks: 1, bytes: 64))
        #expect(report.classes.notScanned == BlockTotal(blocks: 1, bytes: 64))
        #expect(report.held == BlockTotal(blocks: 1, bytes: 64))
        #expect(report.groups.map(\.reachability) == [.directLeak, .indirectLeak])
        #expect(report.groups.first?.indirectBytes == 96 && report.groups.first?.requestedBytes == 88)
        #expect(report.groups.allSatisfy { $0.callSite.function == "lv_leak" && $0.frames.map(\.function) == ["lv_leak", "caller"] })
        let text = LeakReportText.kernelSection(report, seconds: 4)
        #expect(text.contains("Direct leak of 192 (96 direct, 96 indirect) byte(s) in 1 kernel object(s) (88 requested) allocated by kmalloc"))
        #expect(text.contains("KERNEL LEAK SUMMARY: definitely lost: 96 byte(s) in 1 object(s); indirectly lost: 96 byte(s) in 1 object(s)"))
    }

    @Test(.enabled(if: JSONSchemaValidator.available, "needs python3-jsonschema (scripts/setup.sh)"))
    func aKernelScanWithFrameCacheFiguresValidatesAgainstTheSchema() throws {
        let schema = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/schemas/leak-report-v2.schema.json").path
        let builder = KernelReportBuilder { pc, _ in ReportFrame(pc: pc) }
        for cache in [nil, KernelScanStatistics.CacheFigures(framesRead: 12, framesReused: 10_700, storedBytes: 9 << 20)] {
            let scan = KernelScanReport(seconds: 2, scans: 2, objects: 0, rootBytes: 1000, bytesScanned: 2000, writtenObjects: 0,
                                        pauseSeconds: 0.3, complete: true, problems: [], cache: cache)
            let kernel = builder.build(ledger: KernelObjectLedger().snapshot(), latest: .init(verdicts: [], report: scan), seconds: 3)
            let report = LeakReport.kernelOnly(kernel, seconds: 3)
            #expect(try JSONSchemaValidator.errors(try ReportRenderer.render(report, as: .json), schema: schema) == [])
            let text = LeakReportText.kernelSection(kernel, seconds: 3)
            #expect(text.contains("12 page(s) read, 10700 reused") == (cache != nil))
            let decoded = try JSONDecoder().decode(LeakReport.self, from: try ReportRenderer.render(report, as: .json))
            #expect(decoded.kernel?.scan == scan)
        }
    }
}
