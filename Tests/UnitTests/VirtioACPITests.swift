import Foundation
import Testing
@testable import Boot

@Suite struct VirtioACPITests {
    private func sum(_ bytes: some Collection<UInt8>) -> UInt8 { bytes.reduce(0, &+) }
    private func u32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * $1) } }
    private func u64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * $1) } }

    private let disks = [VirtioMMIODeviceDescription(base: 0xD000_1000, gsi: 5),
                         VirtioMMIODeviceDescription(base: 0xD000_2000, gsi: 5)]

    /// (DSDT, MADT) found through RSDP → XSDT → FADT.
    private func tables(_ blob: [UInt8]) -> (dsdt: [UInt8], madt: [UInt8]) {
        func at(_ address: UInt64) -> [UInt8] {
            let offset = Int(address - ACPITables.base.rawValue)
            return Array(blob[offset..<offset + Int(u32(blob, offset + 4))])
        }
        let xsdt = at(u64(blob, 24))
        return (at(u64(at(u64(xsdt, 36)), 140)), at(u64(xsdt, 44)))
    }

    @Test func pkgLengthEncodings() {
        #expect(AML.pkgLength(bodyLength: 0) == [0x01])
        #expect(AML.pkgLength(bodyLength: 62) == [63])                       // 63 total: the one-byte limit
        #expect(AML.pkgLength(bodyLength: 63) == [0x41, 0x04])               // 65 total in two bytes
        #expect(AML.pkgLength(bodyLength: 4093) == [0x4F, 0xFF])             // 4095 total: the two-byte limit
        #expect(AML.pkgLength(bodyLength: 4094) == [0x81, 0x00, 0x01])       // 4097 total in three bytes
        #expect(AML.pkgLength(bodyLength: (1 << 20) - 4) == [0x8F, 0xFF, 0xFF])   // 2^20 - 1 total: the three-byte limit
        #expect(AML.pkgLength(bodyLength: (1 << 20) - 3) == [0xC1, 0x00, 0x00, 0x01])   // 2^20 + 1 total in four bytes
    }

    @Test func termEncodings() {
        #expect(AML.nameSeg("_SB") == Array("_SB_".utf8))
        #expect(AML.nameString("\\_SB") == [0x5C] + Array("_SB_".utf8))
        #expect(AML.integer(0) == [0x00] && AML.integer(1) == [0x01])
        #expect(AML.integer(5) == [0x0A, 5])
        #expect(AML.integer(0x200) == [0x0B, 0x00, 0x02])
        #expect(AML.string("AB") == [0x0D, 0x41, 0x42, 0x00])
        #expect(AML.buffer([1, 2]) == [0x11, 0x05, 0x0A, 0x02, 1, 2])
        #expect(AML.memory32Fixed(base: 0xD000_1000, length: 0x200)
                == [0x86, 0x09, 0x00, 0x01, 0x00, 0x10, 0x00, 0xD0, 0x00, 0x02, 0x00, 0x00])
        #expect(AML.levelInterrupt(gsi: 5) == [0x89, 0x06, 0x00, 0x01, 0x01, 0x05, 0x00, 0x00, 0x00])
        // A package whose body crosses the one-byte PkgLength limit.
        let big = AML.scope("\\_SB", [UInt8](repeating: 0xA3, count: 100))
        #expect(big[0] == 0x10 && Array(big[1...2]) == AML.pkgLength(bodyLength: 105) && big.count == 3 + 105)
    }

    @Test func dsdtDescribesVirtioDevicesAndMADTOverridesTheirIRQ() {
        let (dsdt, madt) = tables(ACPITables.blob(cpuCount: 2, virtioDevices: disks))
        #expect(sum(dsdt) == 0 && sum(madt) == 0)
        let body = Array(dsdt[36...])
        #expect(body.first == 0x10)
        let text = String(decoding: body.map { (0x20...0x7E).contains($0) ? $0 : 0x2E }, as: UTF8.self)
        #expect(text.contains("VR00") && text.contains("VR01"))
        #expect(text.components(separatedBy: "LNRO0005").count == 3)
        #expect(body.windowsContain(AML.memory32Fixed(base: 0xD000_2000, length: 0x200)))
        var overrides: [(irq: UInt8, gsi: UInt32, flags: UInt16)] = []
        var offset = 44
        while offset < madt.count {
            if madt[offset] == 2 {
                overrides.append((madt[offset + 3], u32(madt, offset + 4), UInt16(madt[offset + 8]) | UInt16(madt[offset + 9]) << 8))
            }
            offset += Int(madt[offset + 1])
        }
        #expect(overrides.map(\.irq) == [9, 5])
        #expect(overrides.allSatisfy { $0.flags == 0x000D && $0.gsi == UInt32($0.irq) })
    }

    @Test func noDevicesKeepsAnEmptyDSDT() {
        let (dsdt, _) = tables(ACPITables.blob(cpuCount: 1))
        #expect(dsdt.count == 36)
    }

    @Test func maximumDevicesFitBelowOneMiB() {
        let many = (0..<ACPITables.maximumVirtioDevices).map { VirtioMMIODeviceDescription(base: 0xD000_1000 + UInt32($0) * 0x1000, gsi: 5) }
        let blob = ACPITables.blob(cpuCount: 64, virtioDevices: many)
        #expect(ACPITables.base.rawValue + UInt64(blob.count) <= 0x10_0000)
        let (dsdt, madt) = tables(blob)
        #expect(sum(dsdt) == 0 && sum(madt) == 0)
        #expect(dsdt.count <= ACPITables.dsdtCapacity)
    }

    static let iasl: String? = ["/usr/bin/iasl", "/usr/local/bin/iasl"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: iasl != nil, "iasl (acpica-tools) is not installed"))
    func iaslDisassemblesTheDSDT() throws {
        let (dsdt, _) = tables(ACPITables.blob(cpuCount: 1, virtioDevices: disks))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lv-dsdt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(dsdt).write(to: dir.appendingPathComponent("dsdt.dat"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.iasl!)
        process.arguments = ["-d", "dsdt.dat"]
        process.currentDirectoryURL = dir
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let dsl = try String(contentsOf: dir.appendingPathComponent("dsdt.dsl"), encoding: .utf8)
        #expect(dsl.contains("\"LNRO0005\""))
        #expect(dsl.contains("Memory32Fixed (ReadWrite,"))
        #expect(dsl.contains("0xD0001000") && dsl.contains("0xD0002000"))
        #expect(dsl.contains("Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )"))
        #expect(!dsl.contains("Error"))
    }
}

private extension Array where Element == UInt8 {
    func windowsContain(_ needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { Array(self[$0..<$0 + needle.count]) == needle }
    }
}
