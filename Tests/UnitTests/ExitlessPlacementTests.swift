import DebugInfo
import Foundation
import Testing

@testable import AllocationTracing

/// Where the exitless jumps go in real files: the host's glibc and libstdc++ (the guest image's
/// copies), planned from their bytes and CFI.
@Suite struct ExitlessPlacementTests {
    static func planner(_ path: String) throws -> (ExitlessPlanner, [UInt8]) {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let file = try ELFFile(path: path)
        let segments = file.loadSegments.filter(\.isExecutable).map { (offset: $0.offset, size: $0.fileSize) }
        return (ExitlessPlanner(bytes: bytes, segments: segments, table: CallFrameTable(file: file)), bytes)
    }

    @Test func fillerIsTheNopFormsAndInt3() {
        let filler: [[UInt8]] = [[0x90], [0xCC], [0x66, 0x90], [0x0F, 0x1F, 0x00], [0x0F, 0x1F, 0x40, 0x00],
                                 [0x0F, 0x1F, 0x44, 0x00, 0x00], [0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00],
                                 [0x0F, 0x1F, 0x80, 0, 0, 0, 0], [0x0F, 0x1F, 0x84, 0x00, 0, 0, 0, 0],
                                 [0x66, 0x2E, 0x0F, 0x1F, 0x84, 0x00, 0, 0, 0, 0],
                                 [0x66, 0x66, 0x2E, 0x0F, 0x1F, 0x84, 0x00, 0, 0, 0, 0]]
        for bytes in filler { #expect(ExitlessPlanner.fillerLength(bytes, at: 0) == bytes.count, "\(bytes)") }
        for bytes: [UInt8] in [[0x55], [0x0F, 0x1F], [0x0F, 0x1F, 0x48, 0x00], [0x66, 0x55], [0xC3], [0x0F, 0x1F, 0x80, 0, 0]] {
            #expect(ExitlessPlanner.fillerLength(bytes, at: 0) == nil, "\(bytes)")
        }
    }

    @Test func glibcFreeGetsItsJumpsInItsOwnPageOverPaddingOnly() throws {
        let path = "/lib/x86_64-linux-gnu/libc.so.6"
        let sites = try AllocatorSiteFinder.sites(inFile: path).armable
        let free = try #require(sites.first { $0.entryPoint.function == .free })
        var (planner, bytes) = try Self.planner(path)
        #expect(planner.gaps.count > 1000, "glibc aligns its functions: thousands of padding runs")
        let placed = planner.place(entry: free.fileOffset, displacedLength: free.instruction.length)
        let placement = try #require(placed)
        #expect(placement.entry >> 12 == placement.call >> 12 && placement.call >> 12 == placement.push >> 12)
        #expect(placement.call + 5 == placement.entry && placement.hops.isEmpty, "room right before free")
        #expect(placement.resumeDelta == Int32(free.instruction.length))
        // Both lie inside padding the planner found (a fresh one: this one handed them out).
        let padding = try Self.planner(path).0.gaps
        for (start, count) in [(placement.call, UInt64(5)), (placement.push, UInt64(6))] {
            #expect(padding.contains { $0.start <= start && start + count <= $0.end }, "\(start)")
        }
        #expect(bytes.count > 0)
        #expect(!(placement.push..<placement.push + 6).overlaps(placement.call..<placement.call + 5))
        let runs = placement.runs(stub: ExitlessLayout.codeAddress + 0x40)
        #expect(runs.map(\.offset) == [placement.entry, placement.call, placement.push])
        #expect(runs[0].bytes == [0xEB, 0xF9])
        #expect(runs[2].bytes == [0x68, 0x40, 0x00, 0xE0, 0xFF, 0xC3])
        // The same padding is never handed out twice.
        #expect(planner.place(entry: free.fileOffset, displacedLength: free.instruction.length) == nil)
    }

    @Test func theCommonReleaseEntriesOfGlibcAndLibstdcxxArePlaced() throws {
        for path in ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
                     "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4", "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"]
        where FileManager.default.fileExists(atPath: path) {
            var (planner, _) = try Self.planner(path)
            let releases = try AllocatorSiteFinder.sites(inFile: path).armable.filter { $0.entryPoint.function.releases }
            #expect(!releases.isEmpty)
            for site in releases {
                let placement = planner.place(entry: site.fileOffset, displacedLength: site.instruction.length)
                print("[exitless] \(path) \(site.symbol): \(placement.map { "\($0.hops.count) hop(s), call at \(String($0.call, radix: 16)), push at \(String($0.push, radix: 16))" } ?? "no room (int3)")")
                // jemalloc's free has 4 bytes of padding before it and none within two hops.
                if ["free", "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm"].contains(site.symbol) && !path.contains("malloc") {
                    #expect(placement != nil, "\(path) \(site.symbol)")
                }
                // Every jump lands where the next run starts, within a rel8's reach.
                if let placement {
                    let runs = placement.runs(stub: ExitlessLayout.codeAddress)
                    for (run, next) in zip(runs.dropLast(2), runs.dropFirst()) {
                        #expect(Int64(run.offset) + 2 + Int64(Int8(bitPattern: run.bytes[1])) == Int64(next.offset))
                    }
                }
            }
        }
    }
}
