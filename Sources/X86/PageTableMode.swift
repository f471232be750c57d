/// IA-32e paging with four levels (48-bit virtual addresses) or five (57-bit, CR4.LA57).
public enum PageTableMode: Hashable, Sendable, CustomStringConvertible {
    case fourLevel
    case fiveLevel

    /// CR4.LA57 (bit 12) selects 5-level paging. The caller has checked that IA-32e paging is on
    /// (CR0.PG and EFER.LMA).
    public init(cr4: UInt64) {
        self = cr4 & (1 << 12) != 0 ? .fiveLevel : .fourLevel
    }

    /// Number of table levels walked: 4 or 5.
    public var levels: Int { self == .fiveLevel ? 5 : 4 }

    /// Width of a canonical virtual address: 48 or 57 bits.
    public var virtualAddressBits: Int { self == .fiveLevel ? 57 : 48 }

    public var description: String { self == .fiveLevel ? "5-level paging" : "4-level paging" }
}
