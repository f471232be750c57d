/// What a snapshot fits: the kernel and initramfs it booted (their digests) and the monitor format
/// that wrote it. A snapshot is restored only where all three are equal.
public struct SnapshotIdentity: Sendable, Equatable {
    /// SHA-256 of the kernel file (or its build id): at most 64 bytes.
    public var kernel: [UInt8]
    /// SHA-256 of the initramfs: at most 64 bytes.
    public var initramfs: [UInt8]
    /// The version of the monitor's own state format (device and monitor sections).
    public var monitorFormatVersion: UInt32

    public static let maxDigestBytes = 64

    public init(kernel: [UInt8], initramfs: [UInt8], monitorFormatVersion: UInt32) {
        self.kernel = kernel
        self.initramfs = initramfs
        self.monitorFormatVersion = monitorFormatVersion
    }

    /// The first field that differs from `expected`, as a typed error naming both values.
    func mismatch(against expected: SnapshotIdentity) -> SnapshotFileError? {
        if kernel != expected.kernel { return .mismatch(field: "kernel", snapshot: Self.hex(kernel), expected: Self.hex(expected.kernel)) }
        if initramfs != expected.initramfs {
            return .mismatch(field: "initramfs", snapshot: Self.hex(initramfs), expected: Self.hex(expected.initramfs))
        }
        if monitorFormatVersion != expected.monitorFormatVersion {
            return .mismatch(field: "monitor format version", snapshot: "\(monitorFormatVersion)", expected: "\(expected.monitorFormatVersion)")
        }
        return nil
    }

    /// `bytes` as lowercase hex, "(none)" when empty (digests in messages and file names).
    public static func hex(_ bytes: [UInt8]) -> String {
        bytes.isEmpty ? "(none)" : bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
