/// An empty virtio-mmio slot: device ID 0, which the virtio specification reserves for a
/// placeholder that drivers skip without an error. Machines describe a fixed number of slots,
/// with or without disks in them, so that a snapshot of a booted guest fits runs with any number
/// of disks up to that count (the guest loads its virtio drivers only after the snapshot point).
public struct VirtioPlaceholder: VirtioDeviceBackend {
    public init() {}
    public var deviceID: UInt32 { 0 }
    public var features: UInt64 { VirtioConstants.featureVersion1 }
    public var queueCount: Int { 0 }
    public var queueMaxSize: UInt16 { 0 }
    public var config: [UInt8] { [] }
    public func handle(queue: Int, chain: [VirtioBuffer], memory: any VirtioMemory) throws(VirtioError) -> UInt32 {
        throw .malformedRequest("an empty virtio slot has no queue \(queue)")
    }
}
