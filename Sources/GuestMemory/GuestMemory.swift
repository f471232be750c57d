import Synchronization

/// The guest's RAM: a set of non-overlapping regions with bounds-checked copying access.
/// Never hands out pointers into guest memory: the guest may change it at any time.
///
/// KVM's dirty log does not see the host's own writes; while `recordHostWrites(true)` is in
/// effect, `write`, `fill` and `store` mark the frames they wrote for `takeHostWrittenFrames()`.
public final class GuestMemory: Sendable {
    public let regions: [GuestRAMRegion]
    private let recording = Atomic(false)
    private let hostWrites = Mutex<HostWriteBitmap?>(nil)

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

    /// Memory made of regions built elsewhere (a snapshot's file mapping); the caller has checked
    /// that they are ascending and do not overlap.
    init(regions: [GuestRAMRegion]) {
        self.regions = regions
    }

    public var totalSize: UInt64 { regions.reduce(0) { $0 + $1.size } }

    /// End of RAM that starts at address 0 (the low region).
    public var lowEnd: GuestPhysicalAddress { regions[0].end }

    /// The index of the region that holds [address, address+length) and the host address of `address`.
    private func locate(_ address: GuestPhysicalAddress, _ length: Int) throws(GuestMemoryError) -> (region: Int, host: UnsafeMutableRawPointer) {
        for (index, r) in regions.enumerated() {
            // SAFETY: `offset(of:length:)` returns an offset only when [off, off+length) lies inside the region's mapping.
            if let off = r.offset(of: address, length: length) { return (index, r.hostAddress + off) }
        }
        throw .outOfRange(address: address, length: length)
    }

    public func contains(_ address: GuestPhysicalAddress, length: Int = 1) -> Bool {
        regions.contains { $0.offset(of: address, length: length) != nil }
    }

    public func read(at address: GuestPhysicalAddress, count: Int) throws(GuestMemoryError) -> [UInt8] {
        let (_, source) = try locate(address, count)
        // SAFETY: `locate` checked that `count` bytes from `source` are inside one live mapping.
        return [UInt8](UnsafeRawBufferPointer(start: source, count: count))
    }

    /// Copies `buffer.count` little-endian 64-bit words from `address` (any alignment) in one copy.
    public func readWords(at address: GuestPhysicalAddress, into buffer: UnsafeMutableBufferPointer<UInt64>) throws(GuestMemoryError) {
        let (byteCount, overflow) = buffer.count.multipliedReportingOverflow(by: 8)
        guard !overflow else { throw .outOfRange(address: address, length: .max) }
        let (_, source) = try locate(address, byteCount)
        guard let destination = buffer.baseAddress else { return }
        // SAFETY: `locate` checked byteCount bytes at `source`; the destination buffer holds buffer.count words = byteCount bytes.
        UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: byteCount)
        #if _endian(big)
        for i in buffer.indices { buffer[i] = UInt64(littleEndian: buffer[i]) }
        #endif
    }

    public func write(_ bytes: some Collection<UInt8>, at address: GuestPhysicalAddress) throws(GuestMemoryError) {
        let (region, destination) = try locate(address, bytes.count)
        // SAFETY: `locate` checked bytes.count bytes at `destination` inside one live mapping.
        UnsafeMutableRawBufferPointer(start: destination, count: bytes.count).copyBytes(from: bytes)
        noteHostWrite(region: region, address: address, count: bytes.count)
    }

    public func fill(_ byte: UInt8, at address: GuestPhysicalAddress, count: Int) throws(GuestMemoryError) {
        let (region, destination) = try locate(address, count)
        // SAFETY: `locate` checked `count` bytes at `destination` inside one live mapping.
        destination.initializeMemory(as: UInt8.self, repeating: byte, count: count)
        noteHostWrite(region: region, address: address, count: count)
    }

    /// Reads a little-endian integer.
    public func load<T: FixedWidthInteger>(_ type: T.Type, at address: GuestPhysicalAddress) throws(GuestMemoryError) -> T {
        let (_, source) = try locate(address, MemoryLayout<T>.size)
        return T(littleEndian: source.loadUnaligned(as: T.self))
    }

    /// Reads a little-endian 64-bit word: `load` without the generic call other modules would
    /// make (page-table walks and scans read one per step).
    public func load(_ type: UInt64.Type, at address: GuestPhysicalAddress) throws(GuestMemoryError) -> UInt64 {
        let (_, source) = try locate(address, 8)
        return UInt64(littleEndian: source.loadUnaligned(as: UInt64.self))
    }

    /// Writes a little-endian integer.
    public func store<T: FixedWidthInteger>(_ value: T, at address: GuestPhysicalAddress) throws(GuestMemoryError) {
        let (region, destination) = try locate(address, MemoryLayout<T>.size)
        destination.storeBytes(of: value.littleEndian, as: T.self)
        noteHostWrite(region: region, address: address, count: MemoryLayout<T>.size)
    }

    // MARK: host writes

    /// Starts or stops recording the frames `write`, `fill` and `store` change. Off by default;
    /// stopping discards what was recorded and not yet taken.
    public func recordHostWrites(_ on: Bool) {
        if on {
            hostWrites.withLock { if $0 == nil { $0 = HostWriteBitmap(regions: regions) } }
            recording.store(true, ordering: .releasing)
        } else {
            recording.store(false, ordering: .releasing)
            hostWrites.withLock { $0 = nil }
        }
    }

    /// The frame numbers (address >> 12) written through this object since the previous call,
    /// ascending; clears them. Empty while recording is off.
    public func takeHostWrittenFrames() -> [UInt64] {
        hostWrites.withLock { $0?.take() ?? [] }
    }

    /// Marks a write once its bytes are in place. Marking first would let a concurrent take report
    /// the frame before the bytes land: a reader re-reading it then would get the old bytes, and no
    /// later take would report the write.
    private func noteHostWrite(region: Int, address: GuestPhysicalAddress, count: Int) {
        guard recording.load(ordering: .acquiring) else { return }
        hostWrites.withLock { $0?.mark(region: region, address: address, count: count) }
    }
}
