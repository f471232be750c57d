import Synchronization

/// Dispatches guest port I/O to registered devices by port range.
public final class PortIOBus: Sendable {
    private let map = Mutex(AddressRangeMap<any PortIODevice>())

    public init() {}

    /// Claims ports `base ..< base + length` for `device`.
    /// Throws on zero length, on a range past 0xFFFF, or on overlap with a registered range.
    public func register(_ device: any PortIODevice, base: UInt16, length: UInt16) throws(BusError) {
        guard length > 0 else { throw .emptyRange }
        let (last, overflow) = base.addingReportingOverflow(length - 1)
        guard !overflow else { throw .overflow(base: UInt64(base), length: UInt64(length)) }
        try map.withLock { (map: inout AddressRangeMap<any PortIODevice>) throws(BusError) in
            try map.insert(first: UInt64(base), last: UInt64(last), value: device)
        }
    }

    /// nil when no device claims the port (the VMM then returns all-ones).
    public func read(port: UInt16, size: Int) -> UInt32? {
        guard let entry = map.withLock({ $0.lookup(UInt64(port)) }) else { return nil }
        // The device is called outside the bus lock so it may take its own locks freely.
        return entry.value.read(offset: port &- UInt16(truncatingIfNeeded: entry.first), size: size)
    }

    /// Returns false when no device claims the port (the write is then dropped).
    @discardableResult
    public func write(port: UInt16, size: Int, value: UInt32) -> Bool {
        guard let entry = map.withLock({ $0.lookup(UInt64(port)) }) else { return false }
        entry.value.write(offset: port &- UInt16(truncatingIfNeeded: entry.first), size: size, value: value)
        return true
    }
}
