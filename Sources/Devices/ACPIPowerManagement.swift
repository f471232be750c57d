import Synchronization

/// The ACPI PM1a event and control register blocks a non-hardware-reduced FADT must describe
/// (ports `base`..`base+5`: PM1 status, PM1 enable, PM1 control). The platform is always in ACPI
/// mode (SCI_EN reads as set); no events are ever raised.
public final class ACPIPowerManagement: PortIODevice {
    public static let base: UInt16 = 0x600
    public static let length: UInt16 = 6
    public static let eventBlockLength: UInt8 = 4
    public static let controlBlockOffset: UInt16 = 4
    public static let controlBlockLength: UInt8 = 2
    static let sciEnabled: UInt16 = 1

    private struct Registers {
        var status: UInt16 = 0
        var enable: UInt16 = 0
        var control: UInt16 = ACPIPowerManagement.sciEnabled
    }
    private let registers = Mutex(Registers())

    public init() {}

    public func read(offset: UInt16, size: Int) -> UInt32 {
        let r = registers.withLock { $0 }
        let bytes = (UInt64(r.control) << 32) | (UInt64(r.enable) << 16) | UInt64(r.status)
        let mask: UInt64 = size >= 4 ? 0xFFFF_FFFF : (1 << (8 * UInt64(size))) - 1
        return UInt32(truncatingIfNeeded: (bytes >> (8 * UInt64(offset))) & mask)
    }

    public func write(offset: UInt16, size: Int, value: UInt32) {
        registers.withLock { r in
            switch offset {
            case 0: r.status &= ~UInt16(truncatingIfNeeded: value)          // write 1 to clear
                if size == 4 { r.enable = UInt16(truncatingIfNeeded: value >> 16) }
            case 2: r.enable = UInt16(truncatingIfNeeded: value)
            case Self.controlBlockOffset: r.control = UInt16(truncatingIfNeeded: value) | Self.sciEnabled
            default: break
            }
        }
    }
}

extension ACPIPowerManagement {
    public func snapshot() -> ACPIPowerManagementState {
        registers.withLock { ACPIPowerManagementState(status: $0.status, enable: $0.enable, control: $0.control) }
    }

    /// SCI_EN stays set whatever the saved control register says (the platform is always in ACPI mode).
    public func restore(_ saved: ACPIPowerManagementState) {
        registers.withLock { $0 = Registers(status: saved.status, enable: saved.enable, control: saved.control | Self.sciEnabled) }
    }
}
