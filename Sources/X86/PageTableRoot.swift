import GuestMemory

/// The guest-physical address of the top-level page table (PML4 or PML5), taken from CR3.
public struct PageTableRoot: Hashable, Sendable, CustomStringConvertible {
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
}
