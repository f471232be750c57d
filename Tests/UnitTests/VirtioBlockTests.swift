import Foundation
import Testing
@testable import Devices
import GuestMemory
@testable import VMM

@Suite struct VirtioBlockTests {
    @Test func identifiesAsModernBlockDevice() throws {
        let d = try VirtioTestDriver()
        #expect(d.read32(0x00) == 0x7472_6976)
        #expect(d.read32(0x04) == 2)
        #expect(d.read32(0x08) == 2)
        let features = d.deviceFeatures
        #expect(features == (1 << 32 | 1 << 9 | 1 << 2))
        // Config space: capacity in sectors, little-endian, byte-wise as Linux reads it.
        var capacity: UInt64 = 0
        for i in 0..<8 {
            var byte: UInt8 = 0
            withUnsafeMutableBytes(of: &byte) { d.transport.read(offset: 0x100 + UInt64(i), into: $0) }
            capacity |= UInt64(byte) << (8 * UInt64(i))
        }
        #expect(capacity == 64)
        #expect(d.read32(0x10C) == 254)   // seg_max
    }

    @Test func handshakeAcceptsOfferedFeaturesAndRejectsOthers() throws {
        let d = try VirtioTestDriver()
        #expect(d.handshake() & 8 != 0)
        #expect(d.read32(0x70) == 0xF)
        #expect(d.read32(0x44) == 1)
        #expect(d.handshake(features: 1 << 9) & 8 == 0)                 // no VERSION_1
        #expect(d.handshake(features: 1 << 32 | 1 << 28) & 8 == 0)      // not offered
        d.write32(0x70, 0)
        #expect(d.read32(0x70) == 0)
        #expect(d.read32(0x44) == 0)
    }

    @Test func writeThenReadRoundTripsThroughTheImage() throws {
        let d = try VirtioTestDriver()
        d.handshake()
        let pattern = (0..<1024).map { UInt8(truncatingIfNeeded: $0 * 7 + 3) }
        try d.memory.write(pattern, at: GuestPhysicalAddress(VirtioTestDriver.data))
        try d.request(type: 1, sector: 3, dataLength: 1024, deviceWrites: false)
        #expect(d.statusByte == 0)
        #expect(d.usedIndex == 1)
        #expect(try d.used(0) == (0, 1))
        #expect(Array(d.imageBytes[1536..<2560]) == pattern)
        #expect(d.imageBytes[0..<1536].allSatisfy { $0 == 0 })
        #expect(d.read32(0x60) == 1)
        #expect(d.irq.all == [true])
        d.write32(0x64, 1)
        #expect(d.read32(0x60) == 0)
        #expect(d.irq.all == [true, false])

        try d.memory.fill(0, at: GuestPhysicalAddress(VirtioTestDriver.data), count: 1024)
        try d.request(type: 0, sector: 3, dataLength: 1024, deviceWrites: true)
        #expect(d.statusByte == 0)
        #expect(d.usedIndex == 2)
        #expect(try d.used(1) == (0, 1025))
        #expect(try d.memory.read(at: GuestPhysicalAddress(VirtioTestDriver.data), count: 1024) == pattern)
        #expect(d.irq.all == [true, false, true])
    }

    @Test func outOfRangeSectorsFailWithoutTouchingTheImage() throws {
        let d = try VirtioTestDriver()
        d.handshake()
        try d.memory.fill(0xAA, at: GuestPhysicalAddress(VirtioTestDriver.data), count: 1024)
        try d.request(type: 1, sector: 63, dataLength: 1024, deviceWrites: false)
        #expect(d.statusByte == 1)
        try d.request(type: 1, sector: UInt64.max, dataLength: 512, deviceWrites: false)
        #expect(d.statusByte == 1)
        try d.request(type: 0, sector: 64, dataLength: 512, deviceWrites: true)
        #expect(d.statusByte == 1)
        #expect(d.usedIndex == 3)
        #expect(d.imageBytes == [UInt8](repeating: 0, count: 64 * 512))
        #expect(d.read32(0x70) & 0x40 == 0)
    }

    @Test func readOnlyImageRefusesWrites() throws {
        let d = try VirtioTestDriver(readOnly: true)
        #expect(d.deviceFeatures & (1 << 5) != 0)
        d.handshake()
        try d.memory.fill(0xAA, at: GuestPhysicalAddress(VirtioTestDriver.data), count: 512)
        try d.request(type: 1, sector: 0, dataLength: 512, deviceWrites: false)
        #expect(d.statusByte == 1)
        #expect(d.imageBytes.allSatisfy { $0 == 0 })
    }

    @Test func getIDFlushAndUnsupported() throws {
        let d = try VirtioTestDriver()
        d.handshake()
        try d.request(type: 8, sector: 0, dataLength: 20, deviceWrites: true)
        #expect(d.statusByte == 0)
        let id = try d.memory.read(at: GuestPhysicalAddress(VirtioTestDriver.data), count: 20)
        let name = (d.imagePath as NSString).lastPathComponent
        #expect(id == Array((Array(name.utf8) + [UInt8](repeating: 0, count: 20)).prefix(20)))
        #expect(try d.used(0).length == 21)

        try d.descriptor(0, address: VirtioTestDriver.header, length: 16, flags: 1, next: 2)
        try d.memory.write([4, 0, 0, 0] + [UInt8](repeating: 0, count: 12), at: GuestPhysicalAddress(VirtioTestDriver.header))
        try d.post([0])
        #expect(d.statusByte == 0)
        #expect(try d.used(1).length == 1)

        try d.request(type: 99, sector: 0, dataLength: 512, deviceWrites: true)
        #expect(d.statusByte == 2)
        #expect(d.usedIndex == 3)
    }
}
