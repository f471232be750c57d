@testable import Introspection
import Testing

/// A crafted vmlinux (its kallsyms bytes, its ORC tables and the orc_entry layout from its own
/// BTF, its program headers) gives a typed error at load, never a trap. Each case was a crash
/// found by the fuzz targets in Fuzz/ or the audit of issue 11.
@Suite struct HostileKernelImageTests {
    /// The orc_entry layout of Linux 6.1: s16 sp_offset, s16 bp_offset, then sp_reg:4 bp_reg:4 type:2.
    static var orcLayout: KernelLayout.ORCEntry {
        var layout = KernelLayout.ORCEntry()
        (layout.size, layout.spOffset, layout.bpOffset, layout.flagsByte) = (6, 0, 2, 4)
        (layout.spRegisterBit, layout.bpRegisterBit, layout.typeBit, layout.typeWidth) = (0, 4, 8, 2)
        return layout
    }

    func orc(_ layout: KernelLayout.ORCEntry, entries: Int = 2) throws(IntrospectionError) -> KernelORC {
        let ips = (0..<entries).flatMap { _ in [UInt8](repeating: 0, count: 4) }
        return try KernelORC(ipSection: ips, ipAddress: 0xFFFF_FFFF_8100_0000,
                             entrySection: [UInt8](repeating: 0x55, count: entries * max(layout.size, 0)), layout: layout)
    }

    @Test func aPlausibleORCLayoutDecodes() throws {
        let table = try orc(Self.orcLayout)
        #expect(table.count == 2)
        #expect(table.entry(for: 0xFFFF_FFFF_8100_0000)?.spRegister == 5)
    }

    @Test func anORCLayoutOutsideItsEntryIsATypedError() {
        let cases: [(String, (inout KernelLayout.ORCEntry) -> Void)] = [
            ("flags byte before the entry", { $0.flagsByte = -1 }),            // indexed entrySection[-1]
            ("negative type bit", { $0.typeBit = -3 }),                         // UInt32(-3)
            ("sp_offset at the end", { $0.spOffset = 5 }),                      // read past the last entry
            ("end bit past the flags", { $0.endBit = 40 }),
            ("zero size", { $0.size = 0 }),
            ("type wider than a byte", { $0.typeWidth = 9 }),
        ]
        for (name, craft) in cases {
            var layout = Self.orcLayout
            craft(&layout)
            #expect(throws: IntrospectionError.self, "\(name)") { try orc(layout) }
        }
    }

    /// The kallsyms tables of the real image with the offsets table cut off: `relative_base`
    /// lies at the start of the image, so the offsets table would start before it.
    @Test func kallsymsWhoseOffsetsLieBeforeTheImageIsATypedError() throws {
        let (image, base) = try TestKernelImage.loadedSegments()
        let table = try KallsymsTests.table.get()
        var pattern: [UInt8] = []
        for i in 0..<8 { pattern.append(UInt8(truncatingIfNeeded: table.relativeBase >> (8 * UInt64(i)))) }
        for i in 0..<4 { pattern.append(UInt8(truncatingIfNeeded: UInt32(table.entries.count) >> (8 * UInt32(i)))) }
        let at = try #require(image.withUnsafeBytes { raw -> Int? in
            var from = 0
            while let hit = raw[from...].firstIndex(of: pattern[0]) {
                if hit % 8 == Int((0 &- base) % 8), raw[hit..<min(raw.count, hit + 12)].elementsEqual(pattern) { return hit }
                from = hit + 1
            }
            return nil
        })
        let cut = Array(image[(at - 8)...])
        #expect(throws: KallsymsError.symbolTableNotFound) { try Kallsyms.locate(in: cut, base: base + UInt64(at - 8)) }
    }

    @Test func segmentsOutsideTheFileOrPastTheTopAreTypedErrors() throws {
        let file = [UInt8](repeating: 0xCC, count: 0x3000)
        let kernel: UInt64 = 0xFFFF_FFFF_8100_0000
        let (image, base) = try GuestKernel.loadedImage(segments: [(0x1000, kernel + 0x1000, 0x1000), (0, kernel, 0x800)],
                                                        file: file, path: "crafted")
        #expect(base == kernel && image.count == 0x2000 && image[0x7FF] == 0xCC && image[0x800] == 0 && image[0x1FFF] == 0xCC)
        let hostile: [(String, [(offset: UInt64, virtualAddress: UInt64, fileSize: UInt64)])] = [
            ("offset past the file", [(0x4000, kernel, 0x10)]),
            ("offset beyond Int", [(.max, kernel, 1)]),
            ("size beyond Int", [(0, kernel, .max)]),
            ("segment wrapping past 2^64", [(0, 0xFFFF_FFFF_FFFF_F000, 0x2000)]),
            ("image over 1 GiB", [(0, kernel, 0x1000), (0, 0xFFFF_FFFF_F100_0000, 0x1000)]),
        ]
        for (name, segments) in hostile {
            #expect(throws: IntrospectionError.self, "\(name)") {
                try GuestKernel.loadedImage(segments: segments, file: file, path: "crafted")
            }
        }
    }
}
