/// An address in guest-physical space. Distinct from host pointers and guest-virtual addresses.
public struct GuestPhysicalAddress: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// `self + offset`, or nil on overflow.
    public func adding(_ offset: UInt64) -> GuestPhysicalAddress? {
        let (sum, overflow) = rawValue.addingReportingOverflow(offset)
        return overflow ? nil : GuestPhysicalAddress(sum)
    }

    public func alignedUp(to alignment: UInt64) -> GuestPhysicalAddress? {
        precondition(alignment.nonzeroBitCount == 1)
        guard let bumped = adding(alignment - 1) else { return nil }
        return GuestPhysicalAddress(bumped.rawValue & ~(alignment - 1))
    }

    public func alignedDown(to alignment: UInt64) -> GuestPhysicalAddress {
        precondition(alignment.nonzeroBitCount == 1)
        return GuestPhysicalAddress(rawValue & ~(alignment - 1))
    }

    public var description: String { "gpa 0x" + String(rawValue, radix: 16) }
}
