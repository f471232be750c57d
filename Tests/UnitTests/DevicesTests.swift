#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization
import Testing
@testable import Devices

/// Thread-safe recorder for device callbacks.
private final class Recorder<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])
    func append(_ item: Element) { items.withLock { $0.append(item) } }
    var all: [Element] { items.withLock { $0 } }
    func reset() { items.withLock { $0.removeAll() } }
}

/// A port device that remembers the last access it saw.
private final class ProbePort: PortIODevice {
    let last = Mutex<(offset: UInt16, size: Int, value: UInt32)?>(nil)
    func read(offset: UInt16, size: Int) -> UInt32 { UInt32(offset) | 0xAB00 }
    func write(offset: UInt16, size: Int, value: UInt32) { last.withLock { $0 = (offset, size, value) } }
}

/// An MMIO device backed by a small byte array.
private final class RAMDevice: MMIODevice {
    let bytes = Mutex([UInt8](repeating: 0, count: 16))
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        bytes.withLock { b in for i in 0..<data.count { data[i] = b[Int(offset) + i] } }
    }
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        bytes.withLock { b in for i in 0..<data.count { b[Int(offset) + i] = data[i] } }
    }
}

@Suite struct DevicesBusTests {
    @Test func portBusRoutesWithRelativeOffsets() throws {
        let bus = PortIOBus()
        let device = ProbePort()
        try bus.register(device, base: 0x3F8, length: 8)
        #expect(bus.read(port: 0x3FD, size: 1) == 0xAB05)
        #expect(bus.write(port: 0x3F9, size: 2, value: 0x1234))
        let last = try #require(device.last.withLock { $0 })
        #expect(last.offset == 1 && last.size == 2 && last.value == 0x1234)
    }

    @Test func portBusUnclaimedPorts() throws {
        let bus = PortIOBus()
        try bus.register(ProbePort(), base: 0x70, length: 2)
        #expect(bus.read(port: 0x6F, size: 1) == nil)
        #expect(bus.read(port: 0x72, size: 1) == nil)
        #expect(bus.write(port: 0x80, size: 1, value: 0) == false)
        #expect(bus.read(port: 0x71, size: 1) != nil)
    }

    @Test func portBusRejectsOverlapEmptyAndOverflow() throws {
        let bus = PortIOBus()
        try bus.register(ProbePort(), base: 0x60, length: 5)
        #expect(throws: BusError.overlap(base: 0x64, length: 1)) {
            try bus.register(ProbePort(), base: 0x64, length: 1)
        }
        #expect(throws: BusError.overlap(base: 0x50, length: 0x20)) {
            try bus.register(ProbePort(), base: 0x50, length: 0x20)
        }
        #expect(throws: BusError.overlap(base: 0x5F, length: 2)) {
            try bus.register(ProbePort(), base: 0x5F, length: 2)
        }
        #expect(throws: BusError.emptyRange) {
            try bus.register(ProbePort(), base: 0x100, length: 0)
        }
        #expect(throws: BusError.overflow(base: 0xFFFF, length: 2)) {
            try bus.register(ProbePort(), base: 0xFFFF, length: 2)
        }
        // Adjacent ranges and the very last port are fine.
        try bus.register(ProbePort(), base: 0x5F, length: 1)
        try bus.register(ProbePort(), base: 0x65, length: 1)
        try bus.register(ProbePort(), base: 0xFFFF, length: 1)
        #expect(bus.read(port: 0xFFFF, size: 1) == 0xAB00)
    }

    @Test func mmioBusRoutesAndRejects() throws {
        let bus = MMIOBus()
        let ram = RAMDevice()
        try bus.register(ram, base: 0xFEC0_0000, length: 16)
        #expect(throws: BusError.overlap(base: 0xFEC0_000F, length: 4)) {
            try bus.register(RAMDevice(), base: 0xFEC0_000F, length: 4)
        }
        #expect(throws: BusError.overflow(base: UInt64.max, length: 2)) {
            try bus.register(RAMDevice(), base: UInt64.max, length: 2)
        }
        #expect(throws: BusError.emptyRange) { try bus.register(RAMDevice(), base: 0, length: 0) }

        let stored = withUnsafeBytes(of: UInt32(0xDEAD_BEEF).littleEndian) {
            bus.write(address: 0xFEC0_0004, from: $0)
        }
        #expect(stored)
        var value: UInt32 = 0
        let loaded = withUnsafeMutableBytes(of: &value) { bus.read(address: 0xFEC0_0004, into: $0) }
        #expect(loaded && UInt32(littleEndian: value) == 0xDEAD_BEEF)
        // Unclaimed, and straddling the end of the device.
        #expect(!withUnsafeMutableBytes(of: &value) { bus.read(address: 0x1000, into: $0) })
        #expect(!withUnsafeMutableBytes(of: &value) { bus.read(address: 0xFEC0_000E, into: $0) })
    }
}

@Suite struct DevicesSerialTests {
    // Offsets.
    let thr: UInt16 = 0, ier: UInt16 = 1, iir: UInt16 = 2, lcr: UInt16 = 3
    let mcr: UInt16 = 4, lsr: UInt16 = 5, msr: UInt16 = 6, scr: UInt16 = 7

    private func make() -> (Serial16550, Recorder<UInt8>, Recorder<Bool>) {
        let out = Recorder<UInt8>()
        let irq = Recorder<Bool>()
        let uart = Serial16550(output: { bytes in bytes.forEach(out.append) }, setIRQ: irq.append)
        return (uart, out, irq)
    }

    @Test func transmitsBytesAndAlwaysReportsTransmitterEmpty() {
        let (uart, out, _) = make()
        #expect(uart.read(offset: lsr, size: 1) & 0x60 == 0x60)
        for byte in Array("hi\n".utf8) { uart.write(offset: thr, size: 1, value: UInt32(byte)) }
        #expect(out.all == Array("hi\n".utf8))
        #expect(uart.read(offset: lsr, size: 1) == 0x60)
    }

    @Test func receivesIntoFIFOWithDataReadyAndInterrupt() {
        let (uart, _, irq) = make()
        uart.receive([0x41, 0x42])
        #expect(irq.all.isEmpty)  // RX interrupt not enabled yet
        #expect(uart.read(offset: lsr, size: 1) & 0x01 == 0x01)
        uart.write(offset: ier, size: 1, value: 0x01)
        #expect(irq.all == [true])
        #expect(uart.read(offset: iir, size: 1) == 0x04)
        #expect(uart.read(offset: thr, size: 1) == 0x41)
        #expect(uart.read(offset: thr, size: 1) == 0x42)
        #expect(irq.all == [true, false])
        #expect(uart.read(offset: lsr, size: 1) & 0x01 == 0)
        #expect(uart.read(offset: iir, size: 1) == 0x01)
    }

    @Test func thrEmptyInterruptOnEnableAndClearedByIIRRead() {
        let (uart, _, irq) = make()
        uart.write(offset: ier, size: 1, value: 0x02)
        #expect(irq.all == [true])
        #expect(uart.read(offset: iir, size: 1) == 0x02)  // reported, hence cleared
        #expect(irq.all == [true, false])
        #expect(uart.read(offset: iir, size: 1) == 0x01)
        // Writing THR re-arms it, since the byte leaves at once.
        uart.write(offset: thr, size: 1, value: 0x58)
        #expect(irq.all == [true, false, true])
        // Toggling ETBEI off and on raises it again (the 8250 THRE test).
        _ = uart.read(offset: iir, size: 1)
        uart.write(offset: ier, size: 1, value: 0)
        uart.write(offset: ier, size: 1, value: 0x02)
        #expect(uart.read(offset: iir, size: 1) == 0x02)
        uart.write(offset: ier, size: 1, value: 0)
        #expect(irq.all.last == false)
    }

    @Test func interruptPriorityOrder() {
        let (uart, _, _) = make()
        uart.write(offset: ier, size: 1, value: 0x0F)  // all sources; THRE now pending
        uart.write(offset: mcr, size: 1, value: 0x10)  // loopback: MSR deltas may appear
        uart.write(offset: mcr, size: 1, value: 0x12)  // RTS -> CTS changes: DCTS
        uart.receive(Array(repeating: 0x61, count: UARTRegisters.rxCapacity + 1))  // overrun
        #expect(uart.read(offset: iir, size: 1) == 0x06)  // line status first
        #expect(uart.read(offset: lsr, size: 1) & 0x03 == 0x03)  // OE | DR, clears OE
        #expect(uart.read(offset: iir, size: 1) == 0x04)  // then RX data
        for _ in 0..<UARTRegisters.rxCapacity { _ = uart.read(offset: thr, size: 1) }
        #expect(uart.read(offset: iir, size: 1) == 0x02)  // then THR empty (now cleared)
        #expect(uart.read(offset: iir, size: 1) == 0x00)  // then modem status
        #expect(uart.read(offset: msr, size: 1) & 0x01 == 0x01)  // DCTS, cleared by the read
        #expect(uart.read(offset: iir, size: 1) == 0x01)  // none
    }

    @Test func fifoEnableReportedInIIR() {
        let (uart, _, _) = make()
        uart.write(offset: iir, size: 1, value: 0x07)
        #expect(uart.read(offset: iir, size: 1) == 0xC1)
        uart.receive([1, 2, 3])
        uart.write(offset: iir, size: 1, value: 0x03)  // clear RX FIFO
        #expect(uart.read(offset: lsr, size: 1) & 0x01 == 0)
        uart.write(offset: iir, size: 1, value: 0x00)
        #expect(uart.read(offset: iir, size: 1) == 0x01)
    }

    @Test func loopbackEchoesTHRAndReflectsMCRInMSR() {
        let (uart, out, _) = make()
        #expect(uart.read(offset: msr, size: 1) & 0xF0 == 0xB0)
        uart.write(offset: mcr, size: 1, value: 0x1A)  // LOOP | OUT2 | RTS (8250 autoconfig)
        #expect(uart.read(offset: msr, size: 1) & 0xF0 == 0x90)
        uart.write(offset: mcr, size: 1, value: 0x15)  // LOOP | OUT1 | DTR
        #expect(uart.read(offset: msr, size: 1) & 0xF0 == 0x60)
        uart.write(offset: thr, size: 1, value: 0x5A)
        #expect(out.all.isEmpty)
        #expect(uart.read(offset: lsr, size: 1) & 0x01 == 0x01)
        #expect(uart.read(offset: thr, size: 1) == 0x5A)
        uart.write(offset: mcr, size: 1, value: 0x0B)
        uart.write(offset: thr, size: 1, value: 0x5B)
        #expect(out.all == [0x5B])
    }

    @Test func dlabSelectsDivisorLatchAndScratchWorks() {
        let (uart, out, _) = make()
        uart.write(offset: ier, size: 1, value: 0x05)
        uart.write(offset: lcr, size: 1, value: 0x83)
        uart.write(offset: thr, size: 1, value: 0x01)
        uart.write(offset: ier, size: 1, value: 0x00)
        #expect(uart.read(offset: thr, size: 1) == 0x01)
        #expect(uart.read(offset: ier, size: 1) == 0x00)
        #expect(out.all.isEmpty)  // the divisor write did not transmit
        uart.write(offset: lcr, size: 1, value: 0x03)
        #expect(uart.read(offset: lcr, size: 1) == 0x03)
        #expect(uart.read(offset: ier, size: 1) == 0x05)  // IER untouched by the latch write
        uart.write(offset: ier, size: 1, value: 0xFF)
        #expect(uart.read(offset: ier, size: 1) == 0x0F)  // 8250 autoconfig IER probe
        uart.write(offset: scr, size: 1, value: 0xA5)
        #expect(uart.read(offset: scr, size: 1) == 0xA5)
    }
}

@Suite struct DevicesLegacyTests {
    /// 2024-02-29 13:07:09 UTC, a Thursday.
    static let fixed = Date(timeIntervalSince1970: 1_709_212_029)

    private func cmosRead(_ cmos: CMOSClock, _ index: UInt8) -> UInt32 {
        cmos.write(offset: 0, size: 1, value: UInt32(index) | 0x80)  // NMI bit must be ignored
        return cmos.read(offset: 1, size: 1)
    }

    @Test func cmosReportsBCDTimeForFixedDate() {
        let cmos = CMOSClock(now: { Self.fixed })
        #expect(cmosRead(cmos, 0x00) == 0x09)
        #expect(cmosRead(cmos, 0x02) == 0x07)
        #expect(cmosRead(cmos, 0x04) == 0x13)
        #expect(cmosRead(cmos, 0x06) == 0x05)  // Thursday (Sunday = 1)
        #expect(cmosRead(cmos, 0x07) == 0x29)
        #expect(cmosRead(cmos, 0x08) == 0x02)
        #expect(cmosRead(cmos, 0x09) == 0x24)
        #expect(cmosRead(cmos, 0x32) == 0x20)
        #expect(cmosRead(cmos, 0x0A) & 0x80 == 0)  // UIP clear
        #expect(cmosRead(cmos, 0x0B) == 0x02)  // 24h, BCD
        #expect(cmosRead(cmos, 0x0D) == 0x80)
    }

    @Test func cmosBinaryAnd12HourModesAndStorage() {
        let cmos = CMOSClock(now: { Self.fixed })
        cmos.write(offset: 0, size: 1, value: 0x0B)
        cmos.write(offset: 1, size: 1, value: 0x06)  // binary, 24h
        #expect(cmosRead(cmos, 0x04) == 13)
        #expect(cmosRead(cmos, 0x07) == 29)
        cmos.write(offset: 0, size: 1, value: 0x0B)
        cmos.write(offset: 1, size: 1, value: 0x00)  // BCD, 12h
        #expect(cmosRead(cmos, 0x04) == 0x81)  // 1 PM
        cmos.write(offset: 0, size: 1, value: 0x40)
        cmos.write(offset: 1, size: 1, value: 0x5A)
        #expect(cmosRead(cmos, 0x40) == 0x5A)
        #expect(cmosRead(cmos, 0x7F) == 0x00)
    }

    @Test func civilTimeHandlesEpochAndPreEpoch() {
        let epoch = CivilTime(Date(timeIntervalSince1970: 0))
        #expect([epoch.year, epoch.month, epoch.day, epoch.hour, epoch.minute, epoch.second] == [1970, 1, 1, 0, 0, 0])
        #expect(epoch.weekday == 5)
        let before = CivilTime(Date(timeIntervalSince1970: -1))
        #expect([before.year, before.month, before.day, before.hour, before.minute, before.second] == [1969, 12, 31, 23, 59, 59])
        #expect(before.weekday == 4)
    }

    @Test func i8042ResetCommandCallsOnReset() {
        let resets = Recorder<Int>()
        let kbc = I8042Controller(onReset: { resets.append(1) })
        #expect(kbc.read(offset: 4, size: 1) & 0x03 == 0)  // no data, input buffer empty
        kbc.write(offset: 4, size: 1, value: 0xAD)  // unrelated command
        #expect(resets.all.isEmpty)
        kbc.write(offset: 4, size: 1, value: 0xFE)
        #expect(resets.all == [1])
    }

    @Test func i8042ControllerCommandsAndPort61() {
        let kbc = I8042Controller(onReset: {})
        kbc.write(offset: 4, size: 1, value: 0xAA)
        #expect(kbc.read(offset: 4, size: 1) & 0x01 == 0x01)
        #expect(kbc.read(offset: 0, size: 1) == 0x55)
        #expect(kbc.read(offset: 4, size: 1) & 0x01 == 0)
        kbc.write(offset: 4, size: 1, value: 0x60)
        kbc.write(offset: 0, size: 1, value: 0x30)
        kbc.write(offset: 4, size: 1, value: 0x20)
        #expect(kbc.read(offset: 0, size: 1) == 0x30)
        let first = kbc.read(offset: 1, size: 1)
        let second = kbc.read(offset: 1, size: 1)
        #expect(first ^ second == 0x20)
    }

    @Test func controlPageReportsExitStatusAndUserSpace() throws {
        let codes = Recorder<Int32>()
        let marks = Recorder<Int32>()
        let bus = MMIOBus()
        try bus.register(ControlPage(onExit: codes.append, onUserSpace: { marks.append(1) }),
                         base: ControlPage.base, length: ControlPage.length)
        let write: (UInt64, [UInt8]) -> Bool = { address, bytes in
            bytes.withUnsafeBytes { bus.write(address: address, from: $0) }
        }
        #expect(write(ControlPage.base + ControlPage.userSpaceOffset, [1, 0, 0, 0]))
        #expect(write(ControlPage.base, [3, 0, 0, 0]))
        #expect(write(ControlPage.base, [0xFF, 0x01, 0, 0]))
        #expect(write(ControlPage.base + 0x10, [7, 0, 0, 0]))  // other offsets ignored
        #expect(codes.all == [3, 255])
        #expect(marks.all == [1])
        #expect(!write(ControlPage.base + ControlPage.length, [1]))  // outside the page
    }

    @Test func legacyDevicesOnOneBus() throws {
        let bus = PortIOBus()
        try bus.register(CMOSClock(now: { Self.fixed }), base: 0x70, length: 2)
        try bus.register(I8042Controller(onReset: {}), base: 0x60, length: 5)
        bus.write(port: 0x70, size: 1, value: 0x09)
        #expect(bus.read(port: 0x71, size: 1) == 0x24)
        #expect(bus.read(port: 0x65, size: 1) == nil)
    }
}

@Suite struct ACPIPowerManagementTests {
    @Test func alwaysInACPIModeAndRegistersHoldValues() {
        let pm = ACPIPowerManagement()
        #expect(pm.read(offset: 4, size: 2) & 1 == 1)          // SCI_EN
        pm.write(offset: 4, size: 2, value: 0x2000)
        #expect(pm.read(offset: 4, size: 2) == 0x2001)         // SCI_EN stays set
        pm.write(offset: 2, size: 2, value: 0x0121)
        #expect(pm.read(offset: 2, size: 2) == 0x0121)
        #expect(pm.read(offset: 0, size: 4) == 0x0121_0000)   // status 0, enable in the high half
        #expect(pm.read(offset: 0, size: 2) == 0)
    }
}
