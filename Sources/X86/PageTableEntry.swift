import GuestMemory

/// One 64-bit x86-64 paging-structure entry, decoded.
struct PageTableEntry: Sendable {
    /// Bits 12-51: the next table, or a 4 KiB frame.
    static let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000

    let rawValue: UInt64

    var isPresent: Bool { rawValue & 1 != 0 }
    var isWritable: Bool { rawValue & 2 != 0 }
    var isUser: Bool { rawValue & 4 != 0 }
    /// PS (bit 7) above level 1; at level 1 the same bit is PAT.
    var isLargePage: Bool { rawValue & 0x80 != 0 }
    var isNoExecute: Bool { rawValue >> 63 == 1 }

    /// The table this non-leaf entry points to.
    var tableAddress: GuestPhysicalAddress { GuestPhysicalAddress(rawValue & Self.addressMask) }

    /// The frame of a leaf entry mapping a page of `size` (PAT and reserved low bits dropped).
    func frame(of size: PageSize) -> GuestPhysicalAddress {
        GuestPhysicalAddress(rawValue & Self.addressMask & ~size.offsetMask)
    }
}
