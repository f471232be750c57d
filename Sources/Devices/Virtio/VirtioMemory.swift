/// Guest-physical memory as a virtio device sees it. Keeps the device models independent of the
/// VMM's memory type; every access is bounds-checked by the implementation.
public protocol VirtioMemory: Sendable {
    /// True when `address ..< address + count` lies entirely inside guest RAM.
    func contains(_ address: UInt64, count: Int) -> Bool
    /// The `count` bytes at `address`; throws when any of them is outside guest RAM.
    func read(at address: UInt64, count: Int) throws -> [UInt8]
    /// Stores `bytes` at `address`; throws when any of them is outside guest RAM.
    func write(_ bytes: [UInt8], at address: UInt64) throws
}

extension VirtioMemory {
    /// A little-endian integer at `address`.
    func load<T: FixedWidthInteger>(_ type: T.Type, at address: UInt64) throws(VirtioError) -> T {
        let bytes: [UInt8]
        do { bytes = try read(at: address, count: MemoryLayout<T>.size) } catch { throw .outOfBounds(address: address, count: MemoryLayout<T>.size) }
        return bytes.enumerated().reduce(T.zero) { $0 | T(truncatingIfNeeded: $1.element) << (8 * $1.offset) }
    }

    /// Stores `value` little-endian at `address`.
    func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws(VirtioError) {
        let bytes = (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        do { try write(bytes, at: address) } catch { throw .outOfBounds(address: address, count: bytes.count) }
    }
}
