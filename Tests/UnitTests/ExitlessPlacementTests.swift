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

    /// A 1-byte first instruction is displaced with the next one only where no direct branch
    /// can land between them: every byte offset of the function is read as a branch.
    @Test func aBranchToTheSecondInstructionIsFound() throws {
        // A file of one function at 0x40 (CFI row 0x40..<0x80): push rbp; mov rbp, rdi; ...
        func file(_ body: [UInt8]) -> [UInt8] {
            var bytes = [UInt8](repeating: 0xCC, count: 0x100)
            bytes.replaceSubrange(0x40..<(0x40 + body.count), with: body)
            return bytes
        }
        let table = CallFrameTable(rows: [CallFrameRow(start: 0x40, length: 0x40, rule: CallFrameRule(base: .stackPointer, cfaOffset: 8))])
        let prologue: [UInt8] = [0x55, 0x48, 0x89, 0xFD]
        let plain = file(prologue + [0x48, 0x89, 0xE8, 0x5D, 0xC3])
        let planner = ExitlessPlanner(bytes: plain, segments: [(0, 0x100)], table: table)
        #expect(!planner.mayBranch(to: 0x41, in: plain))
        // jne back to 0x41 (rel8), then a jmp rel32 there, then a call rel32 there.
        let rel8 = file(prologue + [0x75, UInt8(bitPattern: Int8(0x41 - 0x46)), 0xC3])
        #expect(ExitlessPlanner(bytes: rel8, segments: [(0, 0x100)], table: table).mayBranch(to: 0x41, in: rel8))
        let rel32 = file(prologue + [0xE9] + withUnsafeBytes(of: Int32(0x41 - 0x49).littleEndian, Array.init))
        #expect(ExitlessPlanner(bytes: rel32, segments: [(0, 0x100)], table: table).mayBranch(to: 0x41, in: rel32))
        let jcc32 = file(prologue + [0x0F, 0x84] + withUnsafeBytes(of: Int32(0x41 - 0x4A).littleEndian, Array.init))
        #expect(ExitlessPlanner(bytes: jcc32, segments: [(0, 0x100)], table: table).mayBranch(to: 0x41, in: jcc32))
        // Outside any CFI row nothing is known: taken as a branch target.
        #expect(planner.mayBranch(to: 0x20, in: plain))
    }

    /// glibc's malloc starts with a 1-byte `push`: it is placed with the next instruction
    /// displaced too (in the host's libc, where no branch reaches that instruction).
    @Test func glibcMallocIsPlacedWithTwoInstructionsDisplaced() throws {
        let path = "/lib/x86_64-linux-gnu/libc.so.6"
        let sites = try AllocatorSiteFinder.sites(inFile: path).armable
        let malloc = try #require(sites.first { $0.entryPoint.function == .malloc })
        var (planner, bytes) = try Self.planner(path)
        var length = malloc.instruction.length
        if length == 1 {
            let next = Int(malloc.fileOffset) + 1
            let second = try #require(PrologueInstruction.decode(Array(bytes[next..<next + 15])))
            #expect(!planner.mayBranch(to: UInt64(next), in: bytes))
            length += second.length
        }
        let placement = planner.place(entry: malloc.fileOffset, displacedLength: length)
        #expect(placement != nil, "malloc's page has room")
        #expect(placement?.resumeDelta == placement.map { Int32(Int64($0.entry) + Int64(length) - Int64($0.call + 5)) })
    }

    /// Where no 5 bytes of padding are in a `jmp rel8`'s reach, the `call rel32` goes over the
    /// entry's first instructions (glibc's realloc: three 2-byte pushes), its push in any 6 bytes
    /// of padding in the page.
    @Test func aCallAtTheEntryCoversItsFirstInstructions() throws {
        // Padding (int3) only at 0x800..<0x806, far from the entry at 0x40.
        var bytes = [UInt8](repeating: 0x90, count: 0x1000)
        let body: [UInt8] = [0x41, 0x57, 0x41, 0x56, 0x41, 0x55, 0x48, 0x89, 0xF8, 0x41, 0x5D, 0x41, 0x5E, 0x41, 0x5F, 0xC3]
        bytes.replaceSubrange(0x40..<(0x40 + body.count), with: body)
        let rows = [CallFrameRow(start: 0, length: 0x800, rule: CallFrameRule(base: .stackPointer, cfaOffset: 8)),
                    CallFrameRow(start: 0x806, length: 0x1000 - 0x806, rule: CallFrameRule(base: .stackPointer, cfaOffset: 8))]
        var planner = ExitlessPlanner(bytes: bytes, segments: [(0, 0x1000)], table: CallFrameTable(rows: rows))
        let first = try #require(PrologueInstruction.decode(Array(body.prefix(2))))
        let site = AllocatorSite(symbol: "realloc", aliases: [], entryPoint: try #require(AllocatorSymbols.entryPoint(named: "realloc")),
                                 address: 0x40, fileOffset: 0x40, instruction: first, size: UInt64(body.count))
        let (placement, following) = try #require(ExitlessPath.place(site, planner: &planner, file: bytes))
        #expect(placement.callAtEntry)
        #expect(following.map(\.length) == [2, 2], "three pushes: 6 bytes displaced")
        #expect(placement.displacedLength == 6 && placement.resumeDelta == 1)
        #expect(placement.push == 0x800)
        let runs = placement.runs(stub: ExitlessLayout.codeAddress)
        #expect(runs.map(\.offset) == [0x40, 0x800])
        #expect(runs[0].bytes == [0xE8] + withUnsafeBytes(of: Int32(0x800 - 0x45).littleEndian, Array.init))
        // A branch back to the second push keeps the entry on its int3.
        var branching = bytes
        branching.replaceSubrange(0x50..<0x52, with: [0xEB, UInt8(bitPattern: Int8(0x42 - 0x52))])
        var refusing = ExitlessPlanner(bytes: branching, segments: [(0, 0x1000)], table: CallFrameTable(rows: rows))
        #expect(ExitlessPath.place(site, planner: &refusing, file: branching).map { _ in true } == nil)
    }
}
