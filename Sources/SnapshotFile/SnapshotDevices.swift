import Devices

/// The state of every device of a machine, in the order the VMM makes them.
public struct SnapshotDevices: Sendable, Equatable, Codable {
    public var serial: UARTState
    public var cmos: CMOSState
    public var keyboardController: I8042State
    public var powerManagement: ACPIPowerManagementState
    /// One per virtio-mmio slot, in slot order.
    public var virtio: [VirtioMMIOState]

    public init(serial: UARTState, cmos: CMOSState, keyboardController: I8042State,
                powerManagement: ACPIPowerManagementState, virtio: [VirtioMMIOState]) {
        self.serial = serial
        self.cmos = cmos
        self.keyboardController = keyboardController
        self.powerManagement = powerManagement
        self.virtio = virtio
    }
}
