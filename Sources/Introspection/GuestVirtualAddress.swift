/// An address in a guest's virtual address space (translated through the guest's page tables).
public struct GuestVirtualAddress: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }
    public var description: String { "gva 0x" + String(rawValue, radix: 16) }
}
