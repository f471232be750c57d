/// One buffer of a descriptor chain, already checked to lie inside guest RAM.
public struct VirtioBuffer: Sendable, Equatable {
    public let address: UInt64
    public let length: UInt32
    /// Device-writable (VIRTQ_DESC_F_WRITE); otherwise device-readable.
    public let writable: Bool
}

/// A device type behind the virtio-mmio transport (block, ...).
public protocol VirtioDeviceBackend: Sendable {
    /// Virtio device ID (2: block).
    var deviceID: UInt32 { get }
    /// Offered feature bits, VIRTIO_F_VERSION_1 included.
    var features: UInt64 { get }
    var queueCount: Int { get }
    var queueMaxSize: UInt16 { get }
    /// The device-specific configuration space.
    var config: [UInt8] { get }
    /// Serves one request; returns the number of bytes written to device-writable buffers.
    /// Throws only when the chain itself is unusable (the queue is then stopped).
    func handle(queue: Int, chain: [VirtioBuffer], memory: any VirtioMemory) throws(VirtioError) -> UInt32
}

/// Feature bits and status values shared by every device type.
public enum VirtioConstants {
    public static let featureVersion1: UInt64 = 1 << 32
    public static let statusAcknowledge: UInt32 = 1
    public static let statusDriver: UInt32 = 2
    public static let statusDriverOK: UInt32 = 4
    public static let statusFeaturesOK: UInt32 = 8
    public static let statusNeedsReset: UInt32 = 0x40
    public static let statusFailed: UInt32 = 0x80
    /// InterruptStatus bits.
    public static let interruptUsedBuffer: UInt32 = 1
    public static let interruptConfigChange: UInt32 = 2
}
