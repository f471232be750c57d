import AllocationLedger
import AllocationTracing
import Foundation
import GuestInterface
import GuestMemory
import Introspection
import LeakAnalysis
import Testing
import X86
@testable import Reachability

/// Program headers read from a process's own mapping of an ELF file: RELRO and TLS from a real
/// static guest program, and nothing (never a crash or a huge read) from hostile headers.
@Suite struct ELFSegmentsTests {
    static let base: UInt64 = 0x40_0000          // where the static program is linked (ET_EXEC)
    static let physical: UInt64 = 0x40_0000

    func space(holding bytes: [UInt8]) throws -> AddressSpace {
        var crafted = try CraftedKernelMemory(kernel: try CraftedKernelMemory.realKernel.get(), size: 16 << 20)
        try crafted.map(Self.base, to: Self.physical)
        try crafted.memory.write(bytes.prefix(2 << 20), at: GuestPhysicalAddress(Self.physical))
        return AddressSpace(memory: crafted.memory, root: PageTableRoot(tableAddress: GuestPhysicalAddress(0x1000)),
                            mode: PageTableMode(cr4: 0))
    }

    @Test func aRealStaticProgramHasRELROAndTLS() throws {
        // The static guest program next to the image's vmlinux.
        let path = URL(fileURLWithPath: TestKernelImage.path).deletingLastPathComponent()
            .appendingPathComponent("guest-bin/lv-leak-tree").path
        guard let data = FileManager.default.contents(atPath: path) else {
            Issue.record("\(path) is missing: build the guest image (scripts/setup.sh)")
            return
        }
        let bytes = [UInt8](data.prefix(4096))
        let segments = try #require(ELFSegments.read(mappingStart: Self.base, mappingEnd: Self.base + 4096, space: try space(holding: bytes)))
        // readelf -l: GNU_RELRO lies inside the RW LOAD segment of a static glibc program; TLS is small.
        let relro = try #require(segments.relocationReadOnly)
        #expect(relro.lowerBound > Self.base && relro.count > 0 && relro.count < 1 << 20)
        #expect(segments.threadLocalBytes > 0 && segments.threadLocalBytes < 4096)
    }

    @Test func hostileHeadersGiveNothing() throws {
        var header = [UInt8](repeating: 0, count: 4096)
        header[0...4] = [0x7F, 0x45, 0x4C, 0x46, 2]
        func put16(_ v: UInt16, _ o: Int) { header[o] = UInt8(v & 0xFF); header[o + 1] = UInt8(v >> 8) }
        func put64(_ v: UInt64, _ o: Int) { for i in 0..<8 { header[o + i] = UInt8((v >> (8 * UInt64(i))) & 0xFF) } }
        put16(2, 16); put16(56, 54)
        let cases: [(String, () -> Void)] = [
            ("no headers", { put64(64, 32); put16(0, 56) }),
            ("too many headers", { put64(64, 32); put16(60_000, 56) }),
            ("headers past the mapping", { put64(4090, 32); put16(2, 56) }),
            ("offset overflow", { put64(.max - 10, 32); put16(2, 56) }),
            ("wrong entry size", { put64(64, 32); put16(2, 56); put16(32, 54) }),
        ]
        for (name, craft) in cases {
            put16(56, 54)
            craft()
            let s = try space(holding: header)
            #expect(ELFSegments.read(mappingStart: Self.base, mappingEnd: Self.base + 4096, space: s) == nil, "\(name)")
        }
        // Not ELF at all, and an unmapped start.
        let s = try space(holding: [UInt8](repeating: 0x41, count: 4096))
        #expect(ELFSegments.read(mappingStart: Self.base, mappingEnd: Self.base + 4096, space: s) == nil)
        #expect(ELFSegments.read(mappingStart: 0x7000_0000, mappingEnd: 0x7000_1000, space: s) == nil)
    }

    @Test func aHostileRELROIsBounded() throws {
        var header = [UInt8](repeating: 0, count: 4096)
        header[0...4] = [0x7F, 0x45, 0x4C, 0x46, 2]
        func put16(_ v: UInt16, _ o: Int) { header[o] = UInt8(v & 0xFF); header[o + 1] = UInt8(v >> 8) }
        func put32(_ v: UInt32, _ o: Int) { for i in 0..<4 { header[o + i] = UInt8((v >> (8 * UInt32(i))) & 0xFF) } }
        func put64(_ v: UInt64, _ o: Int) { for i in 0..<8 { header[o + i] = UInt8((v >> (8 * UInt64(i))) & 0xFF) } }
        put16(2, 16); put64(64, 32); put16(56, 54); put16(2, 56)
        put32(0x6474_E552, 64); put64(.max - 100, 64 + 16); put64(.max, 64 + 40)   // RELRO wrapping the address space
        put32(7, 120); put64(.max, 120 + 40); put64(.max, 120 + 48)                  // TLS of absurd size
        let segments = try #require(ELFSegments.read(mappingStart: Self.base, mappingEnd: Self.base + 4096, space: try space(holding: header)))
        #expect(segments.relocationReadOnly == nil)
        #expect(segments.threadLocalBytes <= 1 << 20)
    }

    /// Found by the elf-segments fuzz target: a mapping given end-first, or one so large that the
    /// guest's header offset plus the table size wraps, trapped in the bounds check itself.
    @Test func mappingBoundsThatWrapGiveNothing() throws {
        var header = [UInt8](repeating: 0, count: 4096)
        header[0...4] = [0x7F, 0x45, 0x4C, 0x46, 2]
        func put16(_ v: UInt16, _ o: Int) { header[o] = UInt8(v & 0xFF); header[o + 1] = UInt8(v >> 8) }
        func put64(_ v: UInt64, _ o: Int) { for i in 0..<8 { header[o + i] = UInt8((v >> (8 * UInt64(i))) & 0xFF) } }
        put16(2, 16); put64(64, 32); put16(56, 54); put16(2, 56)
        let s = try space(holding: header)
        #expect(ELFSegments.read(mappingStart: Self.base + 4096, mappingEnd: Self.base, space: s) == nil)
        put64(.max - Self.base - 10, 32)
        let huge = try space(holding: header)
        #expect(ELFSegments.read(mappingStart: Self.base, mappingEnd: .max, space: huge) == nil)
    }
}
