/// The guest's RAM: a set of non-overlapping regions with bounds-checked copying access.
/// Never hands out pointers into guest memory: the guest may change it at any time.
public final class GuestMemory: Sendable {
    public let regions: [GuestRAMRegion]

    /// Standard x86 layout for `size` bytes: RAM below `lowLimit`, the rest from 4 GiB up
    /// (the gap holds MMIO devices and the APICs).
    public init(size: UInt64, lowLimit: UInt64 = 0xC000_0000) throws(GuestMemoryError) {
        guard size >= 1 << 20 else { throw .invalidLayout("guest memory of \(size) bytes is smaller than 1 MiB") }
        guard size % 4096 == 0 else { throw .invalidLayout("guest memory size must be a multiple of 4 KiB") }
        var regions = [try GuestRAMRegion(start: GuestPhysicalAddress(0), size: min(size, lowLimit))]
        if size > lowLimit {
            regions.append(try GuestRAMRegion(start: GuestPhysicalAddress(1 << 32), size: size - lowLimit))
        }
        self.regions = regions
    }

    public var totalSize: UInt64 { regions.reduce(0) { $0 + $1.size } }

    /// End of RAM that starts at address 0 (the low region).
    public var lowEnd: GuestPhysicalAddress { regions[0].end }

    private func locate(_ address: GuestPhysicalAddress, _ length: Int) throws(GuestMemoryError) -> (GuestRAMRegion, Int) {
        for r in regions {
            if let off = r.offset(of: address, length: length) { return (r, off) }
        }
        throw .outOfRange(address: address, length: length)
    }

    public func contains(_ address: GuestPhysicalAddress, length: Int = 1) -> Bool {
        regions.contains { $0.offset(of: address, length: length) != nil }
    }

    public func read(at address: GuestPhysicalAddress, count: Int) throws(GuestMemoryError) -> [UInt8] {
        let (r, off) = try locate(address, count)
        return [UInt8](UnsafeRawBufferPointer(start: r.hostAddress + off, count: count))
    }

    public func write(_ bytes: some Collection<UInt8>, at address: GuestPhysicalAddress) throws(GuestMemoryError) {
        let (r, off) = try locate(address, bytes.count)
        let dst = UnsafeMutableRawBufferPointer(start: r.hostAddress + off, count: bytes.count)
        dst.copyBytes(from: bytes)
    }

    public func fill(_ byte: UInt8, at address: GuestPhysicalAddress, count: Int) throws(GuestMemoryError) {
        let (r, off) = try locate(address, count)
        (r.hostAddress + off).initializeMemory(as: UInt8.self, repeating: byte, count: count)
    }

    /// Reads a little-endian integer.
    public func load<T: FixedWidthInteger>(_ type: T.Type, at address: GuestPhysicalAddress) throws(GuestMemoryError) -> T {
        let (r, off) = try locate(address, MemoryLayout<T>.size)
        return T(littleEndian: (r.hostAddress + off).loadUnaligned(as: T.self))
    }

    /// Writes a little-endian integer.
    public func store<T: FixedWidthInteger>(_ value: T, at address: GuestPhysicalAddress) throws(GuestMemoryError) {
        let (r, off) = try locate(address, MemoryLayout<T>.size)
        (r.hostAddress + off).storeBytes(of: value.littleEndian, as: T.self)
    }
}
