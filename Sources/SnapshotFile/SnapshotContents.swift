import GuestMemory

/// Everything in a snapshot file except the RAM: what it fits, the machine's shape, the KVM state
/// (`KVMStateFormat` bytes, self-checked), the devices and the monitor's own state.
public struct SnapshotContents: Sendable, Equatable {
    public var identity: SnapshotIdentity
    public var vcpuCount: UInt32
    /// The guest-physical placement of the RAM stored in the file.
    public var memoryLayout: [GuestRAMExtent]
    /// The time dilation factor the guest ran with (guest time per host time).
    public var timeDilation: Double
    public var kvmState: [UInt8]
    public var devices: SnapshotDevices
    /// The monitor's state (host policy, breakpoints, ledger); empty until the monitor saves one.
    public var monitorState: [UInt8]

    public init(identity: SnapshotIdentity, vcpuCount: UInt32, memoryLayout: [GuestRAMExtent], timeDilation: Double,
                kvmState: [UInt8], devices: SnapshotDevices, monitorState: [UInt8] = []) {
        self.identity = identity
        self.vcpuCount = vcpuCount
        self.memoryLayout = memoryLayout
        self.timeDilation = timeDilation
        self.kvmState = kvmState
        self.devices = devices
        self.monitorState = monitorState
    }

    /// The memory size the layout adds up to (0 for an invalid layout).
    public var memorySize: UInt64 { memoryLayout.reduce(0) { $0 &+ $1.size } }
}
