/// An address in a guest's virtual address space (translated through the guest's page tables).
/// Distinct from `GuestPhysicalAddress`; arithmetic on it is explicit.
public struct GuestVirtualAddress: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// Start of the 4 KiB page holding this address.
    public var pageBase: GuestVirtualAddress { pageBase(for: .fourKiB) }

    /// Offset inside the 4 KiB page holding this address.
    public var pageOffset: UInt64 { pageOffset(for: .fourKiB) }

    /// Start of the page of `size` holding this address.
    public func pageBase(for size: PageSize) -> GuestVirtualAddress { GuestVirtualAddress(rawValue & ~size.offsetMask) }

    /// Offset inside the page of `size` holding this address.
    public func pageOffset(for size: PageSize) -> UInt64 { rawValue & size.offsetMask }

    /// Whether bits 63 down to the mode's top address bit are all equal (bit 47 for 4-level
    /// paging, bit 56 for 5-level). Only canonical addresses can be translated.
    public func isCanonical(in mode: PageTableMode) -> Bool {
        let upper = Int64(bitPattern: rawValue) >> (mode.virtualAddressBits - 1)
        return upper == 0 || upper == -1
    }

    /// Whether the address lies in the upper (kernel) half: bit 63 set.
    public var isKernelHalf: Bool { rawValue >> 63 == 1 }

    /// `self + offset` modulo 2^64, as the CPU computes addresses (`offset` may be negative).
    public func advanced(by offset: Int) -> GuestVirtualAddress {
        GuestVirtualAddress(rawValue &+ UInt64(bitPattern: Int64(offset)))
    }

    /// `self + offset`, or nil if it passes the top of the address space.
    public func adding(_ offset: UInt64) -> GuestVirtualAddress? {
        let (sum, overflow) = rawValue.addingReportingOverflow(offset)
        return overflow ? nil : GuestVirtualAddress(sum)
    }

    public var description: String { "gva 0x" + String(rawValue, radix: 16) }
}
