#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization
import Testing
@testable import Devices
import GuestMemory
@testable import VMM

/// Each device put in a non-trivial state through its registers, snapshotted, restored into a fresh
/// device: the copy answers the same reads (and the virtio copy serves the next request).
@Suite struct DeviceSnapshotTests {
    /// The levels a device drove its interrupt line to.
    private final class Levels: Sendable {
        let all = Mutex<[Bool]>([])
        var setIRQ: @Sendable (Bool) -> Void { { level in self.all.withLock { $0.append(level) } } }
        var values: [Bool] { all.withLock { $0 } }
    }

    /// The same sequence of reads on two port devices.
    private func reads(_ device: some PortIODevice, _ offsets: [UInt16]) -> [UInt32] {
        offsets.map { device.read(offset: $0, size: 1) }
    }

    @Test func uartRegistersAndUnreadInputTravel() throws {
        let levels = Levels()
        let uart = Serial16550(output: { _ in }, setIRQ: levels.setIRQ)
        uart.write(offset: 3, size: 1, value: 0x80)  // DLAB
        uart.write(offset: 0, size: 1, value: 0x01)
        uart.write(offset: 1, size: 1, value: 0x02)
        uart.write(offset: 3, size: 1, value: 0x1B)  // 8E1, DLAB off
        uart.write(offset: 2, size: 1, value: 0x01)  // FIFO on
        uart.write(offset: 4, size: 1, value: 0x0B)  // DTR, RTS, OUT2
        uart.write(offset: 7, size: 1, value: 0x5A)
        uart.write(offset: 1, size: 1, value: 0x01)  // RX interrupt
        uart.receive(Array("hello".utf8))
        #expect(uart.read(offset: 0, size: 1) == UInt32(UInt8(ascii: "h")))
        let saved = uart.snapshot()
        #expect(saved.receiveFIFO == Array("ello".utf8))

        let copyLevels = Levels()
        let copy = Serial16550(output: { _ in }, setIRQ: copyLevels.setIRQ)
        try copy.restore(saved)
        #expect(copyLevels.values == [true])  // RX data pending with RDI enabled
        #expect(copy.snapshot() == saved)
        let sequence: [UInt16] = [1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 5, 2, 0]
        #expect(reads(copy, sequence) == reads(uart, sequence))
        copy.write(offset: 3, size: 1, value: 0x9B)
        uart.write(offset: 3, size: 1, value: 0x9B)
        #expect(reads(copy, [0, 1]) == [0x01, 0x02])
        #expect(reads(copy, [0, 1]) == reads(uart, [0, 1]))
    }

    @Test func uartStateBeyondTheFIFOIsRefused() {
        let uart = Serial16550(output: { _ in }, setIRQ: { _ in })
        var saved = uart.snapshot()
        saved.receiveFIFO = [UInt8](repeating: 1, count: UARTRegisters.rxCapacity + 1)
        #expect(throws: DeviceStateError.self) { try uart.restore(saved) }
        #expect(uart.read(offset: 5, size: 1) & 1 == 0)  // nothing received
    }

    @Test func cmosBytesIndexAndModeTravel() throws {
        let clock: @Sendable () -> Date = { Date(timeIntervalSince1970: 1_700_000_000) }
        let cmos = CMOSClock(now: clock)
        cmos.write(offset: 0, size: 1, value: 0x0B)
        cmos.write(offset: 1, size: 1, value: 0x06)  // binary, 24h
        cmos.write(offset: 0, size: 1, value: 0x20)
        cmos.write(offset: 1, size: 1, value: 0x77)
        cmos.write(offset: 0, size: 1, value: 0x20)  // leave the index on the stored byte
        let copy = CMOSClock(now: clock)
        try copy.restore(cmos.snapshot())
        #expect(copy.read(offset: 1, size: 1) == 0x77)  // the index came along
        for index: UInt32 in [0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0D, 0x32, 0x20] {
            cmos.write(offset: 0, size: 1, value: index)
            copy.write(offset: 0, size: 1, value: index)
            #expect(copy.read(offset: 1, size: 1) == cmos.read(offset: 1, size: 1), "register \(index)")
        }
        var bad = cmos.snapshot()
        bad.bytes.removeLast()
        #expect(throws: DeviceStateError.self) { try copy.restore(bad) }
        bad = cmos.snapshot()
        bad.index = 0x80
        #expect(throws: DeviceStateError.self) { try copy.restore(bad) }
    }

    @Test func i8042PendingCommandAndQueuedReplyTravel() throws {
        let keyboard = I8042Controller(onReset: {})
        keyboard.write(offset: 4, size: 1, value: 0x60)  // write CTR: the data byte comes next
        var copy = I8042Controller(onReset: {})
        try copy.restore(keyboard.snapshot())
        copy.write(offset: 0, size: 1, value: 0x47)
        copy.write(offset: 4, size: 1, value: 0x20)  // read CTR
        #expect(copy.read(offset: 4, size: 1) & 0x01 == 0x01)
        #expect(copy.read(offset: 0, size: 1) == 0x47)

        keyboard.write(offset: 4, size: 1, value: 0xD3)  // write aux output: a reply marked aux
        keyboard.write(offset: 0, size: 1, value: 0x99)
        _ = keyboard.read(offset: 1, size: 1)
        copy = I8042Controller(onReset: {})
        try copy.restore(keyboard.snapshot())
        #expect(reads(copy, [4, 1, 1, 0, 4]) == reads(keyboard, [4, 1, 1, 0, 4]))

        var bad = keyboard.snapshot()
        bad.pendingCommand = 0xAA
        #expect(throws: DeviceStateError.self) { try copy.restore(bad) }
    }

    @Test func acpiPowerManagementRegistersTravel() {
        let pm = ACPIPowerManagement()
        pm.write(offset: 2, size: 2, value: 0x0121)
        pm.write(offset: 4, size: 2, value: 0x2400)
        let copy = ACPIPowerManagement()
        var saved = pm.snapshot()
        copy.restore(saved)
        #expect(copy.read(offset: 0, size: 4) == pm.read(offset: 0, size: 4))
        #expect(copy.read(offset: 4, size: 2) == 0x2401)
        saved.control = 0
        copy.restore(saved)
        #expect(copy.read(offset: 4, size: 2) & 1 == 1)  // SCI_EN stays on
    }

    // MARK: virtio

    private func read32(_ t: VirtioMMIOTransport, _ offset: UInt64) -> UInt32 {
        var bytes = [UInt8](repeating: 0, count: 4)
        bytes.withUnsafeMutableBytes { t.read(offset: offset, into: $0) }
        return bytes.enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) }
    }

    private func write32(_ t: VirtioMMIOTransport, _ offset: UInt64, _ value: UInt32) {
        let bytes = (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        bytes.withUnsafeBytes { t.write(offset: offset, from: $0) }
    }

    /// The registers a driver reads, queue 0 selected.
    private func registers(_ t: VirtioMMIOTransport) -> [UInt32] {
        write32(t, 0x30, 0)
        return [0x34, 0x38, 0x44, 0x60, 0x70, 0x80, 0x84, 0x90, 0x94, 0xA0, 0xA4].map { read32(t, $0) }
    }

    @Test func virtioQueuesResumeAtTheSavedPositionInANewTransport() throws {
        let driver = try VirtioTestDriver(sectors: 64)
        driver.handshake()
        try driver.memory.write([UInt8](repeating: 0x3C, count: 512), at: GuestPhysicalAddress(VirtioTestDriver.data))
        try driver.request(type: 1, sector: 5, dataLength: 512, deviceWrites: false)
        #expect(driver.usedIndex == 1)
        // A read of sector 5 posted but not yet notified: the device has not seen it.
        try driver.memory.fill(0, at: GuestPhysicalAddress(VirtioTestDriver.data), count: 512)
        try driver.memory.store(UInt8(0xFF), at: GuestPhysicalAddress(VirtioTestDriver.status))
        var header = [UInt8](repeating: 0, count: 16)
        header[8] = 5
        try driver.memory.write(header, at: GuestPhysicalAddress(VirtioTestDriver.header))
        try driver.descriptor(1, address: VirtioTestDriver.data, length: 512, flags: 3, next: 2)
        try driver.post([0], notify: false)

        let saved = driver.transport.snapshot()
        #expect(saved.queues[0].lastAvailIndex == 1 && saved.queues[0].usedIndex == 1 && saved.queues[0].ready)
        #expect(saved.interruptStatus == 1)
        let levels = Levels()
        let copy = VirtioMMIOTransport(device: driver.block, memory: GuestMemoryVirtioAdapter(memory: driver.memory),
                                       setIRQ: levels.setIRQ)
        try copy.restore(saved)
        #expect(levels.values == [true])
        #expect(copy.snapshot() == saved)
        #expect(registers(copy) == registers(driver.transport))

        write32(copy, 0x64, 1)  // the driver acknowledges the first completion
        #expect(levels.values == [true, false])
        write32(copy, 0x50, 0)  // and notifies: the copy serves the posted read
        #expect(driver.usedIndex == 2)
        #expect(try driver.used(1).id == 0 && driver.used(1).length == 513)
        #expect(driver.statusByte == 0)
        #expect(try driver.memory.read(at: GuestPhysicalAddress(VirtioTestDriver.data), count: 512) == [UInt8](repeating: 0x3C, count: 512))
        #expect(levels.values == [true, false, true])
    }

    /// The snapshot of a guest waiting for its work was saved before any virtio driver loaded: its
    /// slots restore into a disk or a placeholder alike (a run with --disk or --root restored a
    /// snapshot saved by a run without disks, or the reverse, only by booting cold).
    @Test func anUntouchedVirtioSlotFitsADiskOrAPlaceholder() throws {
        let driver = try VirtioTestDriver(sectors: 8)
        let memory = GuestMemoryVirtioAdapter(memory: driver.memory)
        let placeholder = VirtioMMIOTransport(device: VirtioPlaceholder(), memory: memory, setIRQ: { _ in })
        let untouchedPlaceholder = placeholder.snapshot(), untouchedDisk = driver.transport.snapshot()
        #expect(untouchedPlaceholder.isUntouched && untouchedDisk.isUntouched)
        let levels = Levels()
        let disk = VirtioMMIOTransport(device: driver.block, memory: memory, setIRQ: levels.setIRQ)
        try disk.restore(untouchedPlaceholder)
        #expect(disk.snapshot() == untouchedDisk)
        #expect(levels.values == [false])
        try placeholder.restore(untouchedDisk)
        #expect(placeholder.snapshot() == untouchedPlaceholder)
        // A disk a driver has set up still fits only a disk.
        driver.handshake()
        let used = driver.transport.snapshot()
        #expect(!used.isUntouched)
        #expect(throws: DeviceStateError.self) { try placeholder.restore(used) }
        var touched = untouchedPlaceholder
        touched.status = 1
        #expect(throws: DeviceStateError.self) { try disk.restore(touched) }
    }

    @Test func virtioStateThatDoesNotFitTheDeviceIsRefused() throws {
        let driver = try VirtioTestDriver(sectors: 8)
        driver.handshake()
        let good = driver.transport.snapshot()
        let copy = VirtioMMIOTransport(device: driver.block, memory: GuestMemoryVirtioAdapter(memory: driver.memory), setIRQ: { _ in })
        var bad = good
        bad.queues.append(bad.queues[0])
        #expect(throws: DeviceStateError.self) { try copy.restore(bad) }
        bad = good
        bad.queues[0].deviceRing = 1 << 40  // outside the 4 MiB guest
        #expect(throws: DeviceStateError.self) { try copy.restore(bad) }
        bad = good
        bad.queues[0].size = 3
        #expect(throws: DeviceStateError.self) { try copy.restore(bad) }
        bad = good
        bad.driverFeatures |= 1 << 40
        #expect(throws: DeviceStateError.self) { try copy.restore(bad) }
        bad = good
        bad.queues[0].usedIndex = 7
        #expect(throws: DeviceStateError.self) { try copy.restore(bad) }
        #expect(copy.status == 0)  // nothing taken from a refused state
        try copy.restore(good)
        #expect(copy.status == good.status)
    }
}
