import Foundation
import Synchronization
@testable import Devices
import GuestMemory
@testable import VMM

/// Records every level the device drives its interrupt line to.
final class IRQRecorder: Sendable {
    let levels = Mutex<[Bool]>([])
    var all: [Bool] { levels.withLock { $0 } }
}

/// Drives a virtio-mmio transport the way Linux's virtio_mmio + virtio_blk drivers do, with the
/// rings in a real `GuestMemory` (through the VMM's adapter).
final class VirtioTestDriver: Sendable {
    static let descTable: UInt64 = 0x10000
    static let availRing: UInt64 = 0x11000
    static let usedRing: UInt64 = 0x12000
    static let header: UInt64 = 0x20000
    static let data: UInt64 = 0x30000
    static let status: UInt64 = 0x40000

    let memory: GuestMemory
    let transport: VirtioMMIOTransport
    let block: VirtioBlock
    let irq = IRQRecorder()
    let imagePath: String
    let queueSize: UInt16
    private let availIndex = Mutex<UInt16>(0)

    /// A fresh image of `sectors` zeroed sectors, attached read-write unless `readOnly`.
    init(sectors: Int = 64, readOnly: Bool = false, queueSize: UInt16 = 8) throws {
        imagePath = FileManager.default.temporaryDirectory.appendingPathComponent("lv-virtio-\(UUID().uuidString).img").path
        try Data(count: sectors * 512).write(to: URL(fileURLWithPath: imagePath))
        memory = try GuestMemory(size: 4 << 20)
        block = try VirtioBlock(path: imagePath, readOnly: readOnly)
        self.queueSize = queueSize
        let irq = self.irq
        transport = VirtioMMIOTransport(device: block, memory: GuestMemoryVirtioAdapter(memory: memory),
                                        setIRQ: { high in irq.levels.withLock { $0.append(high) } })
    }

    deinit { try? FileManager.default.removeItem(atPath: imagePath) }

    func read32(_ offset: UInt64) -> UInt32 {
        var bytes = [UInt8](repeating: 0, count: 4)
        bytes.withUnsafeMutableBytes { transport.read(offset: offset, into: $0) }
        return bytes.enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) }
    }

    func write32(_ offset: UInt64, _ value: UInt32) {
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        bytes.withUnsafeBytes { transport.write(offset: offset, from: $0) }
    }

    var deviceFeatures: UInt64 {
        write32(0x14, 0); let low = read32(0x10)
        write32(0x14, 1); let high = read32(0x10)
        return UInt64(high) << 32 | UInt64(low)
    }

    /// Reset, ACKNOWLEDGE | DRIVER, features, FEATURES_OK, queue 0, DRIVER_OK. Returns the status read back after FEATURES_OK.
    @discardableResult
    func handshake(features: UInt64? = nil) -> UInt32 {
        write32(0x70, 0)
        write32(0x70, 1)
        write32(0x70, 1 | 2)
        let accepted = features ?? deviceFeatures
        write32(0x24, 0); write32(0x20, UInt32(truncatingIfNeeded: accepted))
        write32(0x24, 1); write32(0x20, UInt32(truncatingIfNeeded: accepted >> 32))
        write32(0x70, 1 | 2 | 8)
        let status = read32(0x70)
        guard status & 8 != 0 else { return status }
        write32(0x30, 0)
        precondition(read32(0x44) == 0)
        precondition(read32(0x34) >= UInt32(queueSize))
        write32(0x38, UInt32(queueSize))
        write32(0x80, UInt32(Self.descTable)); write32(0x84, 0)
        write32(0x90, UInt32(Self.availRing)); write32(0x94, 0)
        write32(0xA0, UInt32(Self.usedRing)); write32(0xA4, 0)
        write32(0x44, 1)
        write32(0x70, 1 | 2 | 8 | 4)
        return status
    }

    /// Writes descriptor `index`.
    func descriptor(_ index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16 = 0) throws {
        let at = GuestPhysicalAddress(Self.descTable + 16 * UInt64(index))
        try memory.store(address, at: at)
        try memory.store(length, at: at.adding(8)!)
        try memory.store(flags, at: at.adding(12)!)
        try memory.store(next, at: at.adding(14)!)
    }

    /// Posts `heads` in the avail ring, then (optionally) notifies queue 0.
    func post(_ heads: [UInt16], notify: Bool = true) throws {
        try availIndex.withLock { index in
            for head in heads {
                try memory.store(head, at: GuestPhysicalAddress(Self.availRing + 4 + 2 * UInt64(index % queueSize)))
                index &+= 1
            }
            try memory.store(index, at: GuestPhysicalAddress(Self.availRing + 2))
        }
        if notify { write32(0x50, 0) }
    }

    /// A three-descriptor block request (header, data, status) at descriptors 0-2, posted and notified.
    func request(type: UInt32, sector: UInt64, dataLength: UInt32, dataAddress: UInt64 = data, deviceWrites: Bool) throws {
        var header = [UInt8](repeating: 0, count: 16)
        header.replaceSubrange(0..<4, with: (0..<4).map { UInt8(truncatingIfNeeded: type >> (8 * $0)) })
        header.replaceSubrange(8..<16, with: (0..<8).map { UInt8(truncatingIfNeeded: sector >> (8 * UInt64($0))) })
        try memory.write(header, at: GuestPhysicalAddress(Self.header))
        try memory.store(UInt8(0xFF), at: GuestPhysicalAddress(Self.status))
        try descriptor(0, address: Self.header, length: 16, flags: 1, next: 1)
        try descriptor(1, address: dataAddress, length: dataLength, flags: deviceWrites ? 3 : 1, next: 2)
        try descriptor(2, address: Self.status, length: 1, flags: 2)
        try post([0])
    }

    var statusByte: UInt8 { (try? memory.load(UInt8.self, at: GuestPhysicalAddress(Self.status))) ?? 0xEE }
    var usedIndex: UInt16 { (try? memory.load(UInt16.self, at: GuestPhysicalAddress(Self.usedRing + 2))) ?? 0xEEEE }

    /// Used-ring element `slot`: (id, len).
    func used(_ slot: UInt16) throws -> (id: UInt32, length: UInt32) {
        let at = Self.usedRing + 4 + 8 * UInt64(slot % queueSize)
        return (try memory.load(UInt32.self, at: GuestPhysicalAddress(at)), try memory.load(UInt32.self, at: GuestPhysicalAddress(at + 4)))
    }

    var imageBytes: [UInt8] { [UInt8](FileManager.default.contents(atPath: imagePath) ?? Data()) }
}
