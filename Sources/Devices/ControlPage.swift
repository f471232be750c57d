/// The monitor's control page: an MMIO page through which guest user space (via /dev/mem) talks to
/// the monitor. MMIO works from any privilege level on every KVM host, unlike port I/O, which
/// faults at CPL3 on some hosts.
///
/// Registers (32-bit writes): 0x0 exit status (low byte), 0x8 "user space is running" mark.
public final class ControlPage: MMIODevice {
    /// Guest-physical base address, in the hole below 4 GiB.
    public static let base: UInt64 = 0xD000_0000
    public static let length: UInt64 = 0x1000
    public static let exitStatusOffset: UInt64 = 0x0
    public static let userSpaceOffset: UInt64 = 0x8

    private let onExit: @Sendable (Int32) -> Void
    private let onUserSpace: @Sendable () -> Void

    public init(onExit: @escaping @Sendable (Int32) -> Void, onUserSpace: @escaping @Sendable () -> Void) {
        self.onExit = onExit
        self.onUserSpace = onUserSpace
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for i in data.indices { data[i] = 0 }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard let low = data.first else { return }
        switch offset {
        case Self.exitStatusOffset: onExit(Int32(low))
        case Self.userSpaceOffset: onUserSpace()
        default: break
        }
    }
}
