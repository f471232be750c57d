import GuestMemory

/// The guest-physical address of the top-level page table (PML4 or PML5), taken from CR3.
/// It also names an address space: the ledger and the tracer key processes by it.
public struct PageTableRoot: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Bits 12-51 of CR3: the table base. Bits 0-11 (PCID or PWT/PCD), 52-62 (LAM and reserved)
    /// and 63 (no-flush on a CR3 write) are not part of it.
    public static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000

    public let tableAddress: GuestPhysicalAddress

    public init(cr3: UInt64) {
        tableAddress = GuestPhysicalAddress(cr3 & Self.addressMask)
    }

    public init(tableAddress: GuestPhysicalAddress) {
        self.init(cr3: tableAddress.rawValue)
    }

    public var description: String { "page-table root \(tableAddress)" }

    public static func < (a: PageTableRoot, b: PageTableRoot) -> Bool { a.tableAddress.rawValue < b.tableAddress.rawValue }

    /// Encoded as the table's address, a plain number.
    public init(from decoder: any Decoder) throws {
        self.init(cr3: try decoder.singleValueContainer().decode(UInt64.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// The table's address as a number, for output (`0x…`) and serialized reports.
    public var rawValue: UInt64 { tableAddress.rawValue }
}
