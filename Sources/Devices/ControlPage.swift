/// The monitor's control page: an MMIO page through which guest user space (via /dev/mem) talks to
/// the monitor. MMIO works from any privilege level on every KVM host, unlike port I/O, which
/// faults at CPL3 on some hosts.
///
/// Registers: 0x0 exit status (low byte), 0x8 "user space is running" mark (32-bit writes);
/// 0x10...0x38 the `PayloadChannel` (64-bit).
public final class ControlPage: MMIODevice {
    /// Guest-physical base address, in the hole below 4 GiB.
    public static let base: UInt64 = 0xD000_0000
    public static let length: UInt64 = 0x1000
    public static let exitStatusOffset: UInt64 = 0x0
    public static let userSpaceOffset: UInt64 = 0x8

    private let onExit: @Sendable (Int32) -> Void
    private let onUserSpace: @Sendable () -> Void
    /// Where the guest fetches its work after a boot or a restore.
    public let payload: PayloadChannel

    public init(onExit: @escaping @Sendable (Int32) -> Void, onUserSpace: @escaping @Sendable () -> Void,
                payload: PayloadChannel = PayloadChannel()) {
        self.onExit = onExit
        self.onUserSpace = onUserSpace
        self.payload = payload
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        let value = payload.read(offset: offset) ?? 0
        for i in data.indices { data[i] = i < 8 ? UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) : 0 }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard let low = data.first else { return }
        switch offset {
        case Self.exitStatusOffset: onExit(Int32(low))
        case Self.userSpaceOffset: onUserSpace()
        default: _ = payload.write(offset: offset, value: Self.littleEndian(data))
        }
    }

    /// The written bytes as a little-endian number (at most 8 of them).
    public static func littleEndian(_ data: UnsafeRawBufferPointer) -> UInt64 {
        var value: UInt64 = 0
        for (i, byte) in data.prefix(8).enumerated() { value |= UInt64(byte) << (8 * UInt64(i)) }
        return value
    }
}
