import Foundation
import Testing
@testable import Devices
import GuestMemory
@testable import VMM

@Suite struct VirtioQueueTests {
    /// Descriptor `head` as a one-descriptor-header + status FLUSH-like request of `type`.
    private func unsupportedRequest(_ d: VirtioTestDriver, head: UInt16) throws {
        try d.descriptor(head, address: VirtioTestDriver.header, length: 16, flags: 1, next: head + 1)
        try d.descriptor(head + 1, address: VirtioTestDriver.status + UInt64(head), length: 1, flags: 2)
    }

    @Test func usedRingFollowsAvailOrder() throws {
        let d = try VirtioTestDriver()
        d.handshake()
        try d.memory.write([99, 0, 0, 0] + [UInt8](repeating: 0, count: 12), at: GuestPhysicalAddress(VirtioTestDriver.header))
        for head: UInt16 in [0, 2, 4] { try unsupportedRequest(d, head: head) }
        try d.post([4, 0, 2])
        #expect(d.usedIndex == 3)
        #expect(try (0..<3).map { try d.used($0).id } == [4, 0, 2])
        #expect(d.irq.all == [true])
    }

    @Test func indicesWrapAt65536() throws {
        let d = try VirtioTestDriver()
        d.handshake()
        try d.memory.write([99, 0, 0, 0] + [UInt8](repeating: 0, count: 12), at: GuestPhysicalAddress(VirtioTestDriver.header))
        for head: UInt16 in stride(from: 0, to: 8, by: 2) { try unsupportedRequest(d, head: head) }
        var total = 0
        while total < 65536 + 12 {
            try d.post([0, 2, 4, 6])
            total += 4
        }
        #expect(d.usedIndex == UInt16(truncatingIfNeeded: total))
        #expect(try d.used(UInt16(truncatingIfNeeded: total - 1)).id == 6)
        #expect(d.read32(0x70) & 0x40 == 0)
    }

    @Test func descriptorLoopNeedsReset() throws {
        let d = try VirtioTestDriver()
        d.handshake()
        try d.descriptor(0, address: VirtioTestDriver.header, length: 16, flags: 1, next: 1)
        try d.descriptor(1, address: VirtioTestDriver.status, length: 1, flags: 3, next: 0)
        try d.post([0])
        #expect(d.read32(0x70) & 0x40 != 0)
        #expect(d.read32(0x60) & 2 != 0)
        #expect(d.usedIndex == 0)
        #expect(d.irq.all == [true])
        // The queue is stopped: more notifications do nothing.
        try d.request(type: 8, sector: 0, dataLength: 20, deviceWrites: true)
        #expect(d.usedIndex == 0)
        // A reset brings the device back.
        d.handshake()
        #expect(d.read32(0x70) & 0x40 == 0)
    }

    @Test func addressOutsideGuestMemoryNeedsReset() throws {
        let d = try VirtioTestDriver()
        d.handshake()
        try d.memory.write([1, 0, 0, 0] + [UInt8](repeating: 0, count: 12), at: GuestPhysicalAddress(VirtioTestDriver.header))
        try d.request(type: 1, sector: 0, dataLength: 512, dataAddress: 0xFFFF_FFFF_FFFF_FF00, deviceWrites: false)
        #expect(d.read32(0x70) & 0x40 != 0)
        #expect(d.usedIndex == 0)
        #expect(d.imageBytes.allSatisfy { $0 == 0 })
    }

    @Test func badRingsAndIndicesNeedReset() throws {
        let d = try VirtioTestDriver()
        d.handshake()
        // Head past the queue size.
        try d.post([9])
        #expect(d.read32(0x70) & 0x40 != 0)
        // Avail index jumping by more than the queue size.
        d.handshake()
        try d.memory.store(UInt16(100), at: GuestPhysicalAddress(VirtioTestDriver.availRing + 2))
        d.write32(0x50, 0)
        #expect(d.read32(0x70) & 0x40 != 0)
        // Indirect descriptors were not negotiated.
        d.handshake()
        try d.memory.store(UInt16(0), at: GuestPhysicalAddress(VirtioTestDriver.availRing + 2))
        try d.descriptor(0, address: VirtioTestDriver.header, length: 16, flags: 4)
        try d.memory.store(UInt16(0), at: GuestPhysicalAddress(VirtioTestDriver.availRing + 4))
        try d.memory.store(UInt16(1), at: GuestPhysicalAddress(VirtioTestDriver.availRing + 2))
        d.write32(0x50, 0)
        #expect(d.read32(0x70) & 0x40 != 0)
        // A ring outside guest memory is refused when the queue is made ready.
        d.write32(0x70, 0)
        d.write32(0x70, 3)
        d.write32(0x20, 0); d.write32(0x24, 1); d.write32(0x20, 1); d.write32(0x70, 0xB)
        d.write32(0x30, 0); d.write32(0x38, 8)
        d.write32(0x80, 0); d.write32(0x84, 0x100)
        d.write32(0x44, 1)
        #expect(d.read32(0x44) == 0)
        #expect(d.read32(0x70) & 0x40 != 0)
    }
}
