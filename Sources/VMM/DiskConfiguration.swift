/// A raw disk image given to the guest as a virtio block device.
public struct DiskConfiguration: Sendable, Equatable {
    public var path: String
    public var readOnly: Bool

    public init(path: String, readOnly: Bool) {
        self.path = path
        self.readOnly = readOnly
    }
}
