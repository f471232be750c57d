/// A device reached through x86 port I/O (`in`/`out`).
public protocol PortIODevice: AnyObject, Sendable {
    /// `offset` is relative to the base the device was registered at; size is 1, 2 or 4.
    func read(offset: UInt16, size: Int) -> UInt32
    /// `offset` is relative to the base the device was registered at; size is 1, 2 or 4.
    func write(offset: UInt16, size: Int, value: UInt32)
}

/// A device reached through memory-mapped I/O.
public protocol MMIODevice: AnyObject, Sendable {
    /// Fills `data` (the access width) with the bytes at `offset` from the device's base.
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer)
    /// Handles a store of `data` (the access width) at `offset` from the device's base.
    func write(offset: UInt64, from data: UnsafeRawBufferPointer)
}
