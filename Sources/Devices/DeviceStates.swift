/// The state of each emulated device as a plain value, for snapshots: `snapshot()` takes it from a
/// device, `restore(_:)` puts it into another (a freshly made one). Every restore checks the value
/// as untrusted input (it comes from a file) and fails with `DeviceStateError`, never a trap.

/// A 16550 UART's registers and the received bytes not yet read by the guest.
public struct UARTState: Sendable, Equatable, Codable {
    public var receiveFIFO: [UInt8]
    public var interruptEnable: UInt8
    public var lineControl: UInt8
    public var modemControl: UInt8
    public var scratch: UInt8
    public var divisorLow: UInt8
    public var divisorHigh: UInt8
    public var fifoEnabled: Bool
    public var lineStatusErrors: UInt8
    public var modemStatusDeltas: UInt8
    public var transmitterEmptyInterrupt: Bool
}

/// The CMOS/RTC's index register and its 128 bytes (the time registers are read from the host clock).
public struct CMOSState: Sendable, Equatable, Codable {
    public var index: UInt8
    public var bytes: [UInt8]
}

/// The i8042's configuration byte, pending command and queued reply.
public struct I8042State: Sendable, Equatable, Codable {
    public var configuration: UInt8
    public var pendingCommand: UInt8?
    public var output: UInt8?
    public var outputIsAux: Bool
    public var lastWasCommand: Bool
    public var port61Toggle: Bool
}

/// The ACPI PM1 status, enable and control registers.
public struct ACPIPowerManagementState: Sendable, Equatable, Codable {
    public var status: UInt16
    public var enable: UInt16
    public var control: UInt16
}

/// One split virtqueue: the layout the driver programmed and where the device is in its rings.
/// Requests are served synchronously on the notifying write, so between two exits no request is
/// half-done: chains posted and not yet notified are in guest RAM, and `lastAvailIndex` says where
/// the device resumes.
public struct VirtqueueState: Sendable, Equatable, Codable {
    public var size: UInt16
    public var ready: Bool
    public var descriptorTable: UInt64
    public var driverRing: UInt64
    public var deviceRing: UInt64
    public var lastAvailIndex: UInt16
    public var usedIndex: UInt16

    public init(size: UInt16, ready: Bool, descriptorTable: UInt64, driverRing: UInt64, deviceRing: UInt64,
                lastAvailIndex: UInt16, usedIndex: UInt16) {
        self.size = size
        self.ready = ready
        self.descriptorTable = descriptorTable
        self.driverRing = driverRing
        self.deviceRing = deviceRing
        self.lastAvailIndex = lastAvailIndex
        self.usedIndex = usedIndex
    }
}

/// A virtio-mmio transport: the negotiation registers, the status, the interrupt status and its queues.
/// The device behind it (a disk image) is configured, not saved.
public struct VirtioMMIOState: Sendable, Equatable, Codable {
    public var deviceFeaturesSelect: UInt32
    public var driverFeaturesSelect: UInt32
    public var driverFeatures: UInt64
    public var queueSelect: UInt32
    public var queues: [VirtqueueState]
    public var interruptStatus: UInt32
    public var status: UInt32

    public init(deviceFeaturesSelect: UInt32, driverFeaturesSelect: UInt32, driverFeatures: UInt64, queueSelect: UInt32,
                queues: [VirtqueueState], interruptStatus: UInt32, status: UInt32) {
        self.deviceFeaturesSelect = deviceFeaturesSelect
        self.driverFeaturesSelect = driverFeaturesSelect
        self.driverFeatures = driverFeatures
        self.queueSelect = queueSelect
        self.queues = queues
        self.interruptStatus = interruptStatus
        self.status = status
    }
}

/// Why a device state cannot be restored into a device.
public enum DeviceStateError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalid(device: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let device, let reason): return "saved \(device) state is invalid: \(reason)"
        }
    }
}
