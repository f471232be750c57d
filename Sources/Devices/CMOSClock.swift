#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization

/// CMOS RTC at 0x70-0x71 (register with base 0x70 length 2).
///
/// Time comes from the host clock in UTC (BCD or binary per register B, 24h by default);
/// status registers A-D are sane (UIP always clear); the NMI-disable bit of the index is
/// ignored; the other CMOS bytes are plain readable/writable storage (128 bytes).
/// Guest writes to the time registers are ignored.
public final class CMOSClock: PortIODevice {
    // Register indices.
    static let seconds: UInt8 = 0x00, minutes: UInt8 = 0x02, hours: UInt8 = 0x04
    static let weekday: UInt8 = 0x06, dayOfMonth: UInt8 = 0x07, month: UInt8 = 0x08, year: UInt8 = 0x09
    static let statusA: UInt8 = 0x0A, statusB: UInt8 = 0x0B, statusC: UInt8 = 0x0C, statusD: UInt8 = 0x0D
    static let century: UInt8 = 0x32
    // Register B bits.
    static let binaryMode: UInt8 = 0x04, hour24: UInt8 = 0x02

    private struct State {
        var index: UInt8 = 0
        var bytes = [UInt8](repeating: 0, count: 128)
    }

    private let state: Mutex<State>
    private let now: @Sendable () -> Date

    public init(now: @escaping @Sendable () -> Date = { Date() }) {
        self.now = now
        var initial = State()
        initial.bytes[Int(Self.statusA)] = 0x26  // 32.768 kHz time base, 1024 Hz rate, UIP clear
        initial.bytes[Int(Self.statusB)] = Self.hour24  // BCD, 24-hour, no interrupts
        initial.bytes[Int(Self.statusD)] = 0x80  // valid RAM and time
        self.state = Mutex(initial)
    }

    public func read(offset: UInt16, size: Int) -> UInt32 {
        guard offset == 1 else { return 0xFF }  // the index port is write-only
        let (index, registerB, stored) = state.withLock { s in
            let index = s.index
            let value = s.bytes[Int(index)]
            if index == Self.statusC { s.bytes[Int(index)] = 0 }  // reading C acknowledges flags
            return (index, s.bytes[Int(Self.statusB)], value)
        }
        if let value = clockRegister(index, registerB: registerB) {
            return UInt32(value)
        }
        return UInt32(stored)
    }

    public func write(offset: UInt16, size: Int, value: UInt32) {
        let byte = UInt8(truncatingIfNeeded: value)
        state.withLock { s in
            if offset == 0 {
                s.index = byte & 0x7F  // bit 7 is the NMI mask: ignored
                return
            }
            guard offset == 1 else { return }
            switch s.index {
            case Self.statusA: s.bytes[Int(Self.statusA)] = byte & 0x7F  // UIP is read-only
            case Self.statusC, Self.statusD: break  // read-only
            default: s.bytes[Int(s.index)] = byte
            }
        }
    }

    /// The value of a time/date register for the current host time, or nil for other indices.
    private func clockRegister(_ index: UInt8, registerB: UInt8) -> UInt8? {
        let time: CivilTime
        switch index {
        case Self.seconds, Self.minutes, Self.hours, Self.weekday, Self.dayOfMonth, Self.month,
            Self.year, Self.century:
            time = CivilTime(now())
        default:
            return nil
        }
        let binary = registerB & Self.binaryMode != 0
        func encode(_ value: Int) -> UInt8 {
            binary ? UInt8(value) : UInt8((value / 10) << 4 | (value % 10))
        }
        switch index {
        case Self.seconds: return encode(time.second)
        case Self.minutes: return encode(time.minute)
        case Self.hours:
            if registerB & Self.hour24 != 0 { return encode(time.hour) }
            let hour12 = time.hour % 12 == 0 ? 12 : time.hour % 12
            return encode(hour12) | (time.hour >= 12 ? 0x80 : 0)
        case Self.weekday: return encode(time.weekday)
        case Self.dayOfMonth: return encode(time.day)
        case Self.month: return encode(time.month)
        case Self.year: return encode(time.year % 100)
        default: return encode(time.year / 100 % 100)  // century
        }
    }
}

/// A UTC calendar breakdown of a `Date`, computed arithmetically (proleptic Gregorian).
struct CivilTime: Equatable {
    var year, month, day, hour, minute, second: Int
    /// 1 = Sunday ... 7 = Saturday, as the RTC counts.
    var weekday: Int

    init(_ date: Date) {
        let total = Int(date.timeIntervalSince1970.rounded(.down))
        let (days, secondsOfDay) = Self.floorDivMod(total, 86_400)
        hour = secondsOfDay / 3600
        minute = secondsOfDay % 3600 / 60
        second = secondsOfDay % 60
        weekday = Self.floorDivMod(days + 4, 7).1 + 1  // 1970-01-01 was a Thursday
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = Self.floorDivMod(z, 146_097).0
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * mp + 2) / 5 + 1
        month = mp < 10 ? mp + 3 : mp - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    private static func floorDivMod(_ a: Int, _ b: Int) -> (Int, Int) {
        let q = a / b
        let r = a % b
        return r < 0 ? (q - 1, r + b) : (q, r)
    }
}

extension CMOSClock {
    /// The index register and the 128 CMOS bytes (the clock itself follows the host's time).
    public func snapshot() -> CMOSState {
        state.withLock { CMOSState(index: $0.index, bytes: $0.bytes) }
    }

    public func restore(_ saved: CMOSState) throws(DeviceStateError) {
        guard saved.bytes.count == 128 else { throw .invalid(device: "CMOS", reason: "\(saved.bytes.count) bytes, expected 128") }
        guard saved.index < 128 else { throw .invalid(device: "CMOS", reason: "index \(saved.index) (at most 127)") }
        state.withLock { $0 = State(index: saved.index, bytes: saved.bytes) }
    }
}
