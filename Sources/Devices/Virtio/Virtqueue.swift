/// A split virtqueue (virtio 1.x §2.7): descriptor table, driver (avail) ring, device (used) ring,
/// all in guest memory and read through bounds-checked `VirtioMemory` accesses.
public struct Virtqueue: Sendable {
    static let flagNext: UInt16 = 1
    static let flagWrite: UInt16 = 2
    static let flagIndirect: UInt16 = 4

    public var size: UInt16 = 0
    public var ready = false
    public var descriptorTable: UInt64 = 0
    public var driverRing: UInt64 = 0
    public var deviceRing: UInt64 = 0
    /// Next avail-ring slot to consume and next used-ring slot to fill (free-running, wrap at 2^16).
    public private(set) var lastAvailIndex: UInt16 = 0
    public private(set) var usedIndex: UInt16 = 0

    public init() {}

    /// Whether the layout the driver programmed can be used: power-of-two size within `maxSize`,
    /// aligned rings that lie inside guest memory.
    public func isValid(maxSize: UInt16, memory: any VirtioMemory) -> Bool {
        let n = Int(size)
        guard size > 0, size <= maxSize, size & (size - 1) == 0 else { return false }
        guard descriptorTable % 16 == 0, driverRing % 2 == 0, deviceRing % 4 == 0 else { return false }
        return memory.contains(descriptorTable, count: 16 * n)
            && memory.contains(driverRing, count: 6 + 2 * n)
            && memory.contains(deviceRing, count: 6 + 8 * n)
    }

    /// The next available chain (head index and buffers), or nil when the driver has posted none.
    public mutating func nextChain(memory: any VirtioMemory) throws(VirtioError) -> (head: UInt16, buffers: [VirtioBuffer])? {
        let availIndex = try memory.load(UInt16.self, at: driverRing + 2)
        let pending = availIndex &- lastAvailIndex
        guard pending != 0 else { return nil }
        guard pending <= size else { throw .availIndexJump(last: lastAvailIndex, now: availIndex) }
        let head = try memory.load(UInt16.self, at: driverRing + 4 + 2 * UInt64(lastAvailIndex % size))
        let buffers = try chain(from: head, memory: memory)
        lastAvailIndex &+= 1
        return (head, buffers)
    }

    /// Walks the chain starting at `head`; at most `size` descriptors, so a loop is an error.
    func chain(from head: UInt16, memory: any VirtioMemory) throws(VirtioError) -> [VirtioBuffer] {
        var buffers: [VirtioBuffer] = []
        var index = head
        while true {
            guard index < size else { throw .badDescriptorIndex(index) }
            guard buffers.count < Int(size) else { throw .chainTooLong }
            let at = descriptorTable + 16 * UInt64(index)
            let address = try memory.load(UInt64.self, at: at)
            let length = try memory.load(UInt32.self, at: at + 8)
            let flags = try memory.load(UInt16.self, at: at + 12)
            guard flags & Self.flagIndirect == 0 else { throw .indirectUnsupported }
            guard length == 0 || memory.contains(address, count: Int(length)) else {
                throw .outOfBounds(address: address, count: Int(length))
            }
            buffers.append(VirtioBuffer(address: address, length: length, writable: flags & Self.flagWrite != 0))
            guard flags & Self.flagNext != 0 else { return buffers }
            index = try memory.load(UInt16.self, at: at + 14)
        }
    }

    /// Returns chain `head` to the driver with `length` bytes written: the element first, then the index.
    public mutating func pushUsed(head: UInt16, length: UInt32, memory: any VirtioMemory) throws(VirtioError) {
        let slot = deviceRing + 4 + 8 * UInt64(usedIndex % size)
        try memory.store(UInt32(head), at: slot)
        try memory.store(length, at: slot + 4)
        usedIndex &+= 1
        try memory.store(usedIndex, at: deviceRing + 2)
    }
}

extension Virtqueue {
    /// The queue as a value for a snapshot.
    public var savedState: VirtqueueState {
        VirtqueueState(size: size, ready: ready, descriptorTable: descriptorTable, driverRing: driverRing,
                       deviceRing: deviceRing, lastAvailIndex: lastAvailIndex, usedIndex: usedIndex)
    }

    /// A queue in the saved state (checked by the transport before it is made ready).
    public init(saved: VirtqueueState) {
        size = saved.size
        ready = saved.ready
        descriptorTable = saved.descriptorTable
        driverRing = saved.driverRing
        deviceRing = saved.deviceRing
        lastAvailIndex = saved.lastAvailIndex
        usedIndex = saved.usedIndex
    }
}
