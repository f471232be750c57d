import Synchronization

/// Dispatches guest MMIO accesses to registered devices by guest-physical address range.
public final class MMIOBus: Sendable {
    private let map = Mutex(AddressRangeMap<any MMIODevice>())

    public init() {}

    /// Claims addresses `base ..< base + length` for `device`.
    /// Throws on zero length, on a range past 2^64 - 1, or on overlap with a registered range.
    public func register(_ device: any MMIODevice, base: UInt64, length: UInt64) throws(BusError) {
        guard length > 0 else { throw .emptyRange }
        let (last, overflow) = base.addingReportingOverflow(length - 1)
        guard !overflow else { throw .overflow(base: base, length: length) }
        try map.withLock { (map: inout AddressRangeMap<any MMIODevice>) throws(BusError) in
            try map.insert(first: base, last: last, value: device)
        }
    }

    /// Returns false (leaving `data` untouched) when no single device claims the whole access.
    public func read(address: UInt64, into data: UnsafeMutableRawBufferPointer) -> Bool {
        guard let entry = claimant(address: address, count: data.count) else { return false }
        entry.value.read(offset: address - entry.first, into: data)
        return true
    }

    /// Returns false (dropping the write) when no single device claims the whole access.
    @discardableResult
    public func write(address: UInt64, from data: UnsafeRawBufferPointer) -> Bool {
        guard let entry = claimant(address: address, count: data.count) else { return false }
        entry.value.write(offset: address - entry.first, from: data)
        return true
    }

    private func claimant(address: UInt64, count: Int) -> AddressRangeMap<any MMIODevice>.Entry? {
        guard let entry = map.withLock({ $0.lookup(address) }) else { return nil }
        // The access must fit entirely inside the device's range.
        guard count <= 1 || UInt64(count - 1) <= entry.last - address else { return nil }
        return entry
    }
}
