import GuestMemory

/// Where one guest-virtual address maps: the physical address, the page holding it, and the
/// effective permissions of that page.
public struct Translation: Hashable, Sendable, CustomStringConvertible {
    public let virtualAddress: GuestVirtualAddress
    public let physicalAddress: GuestPhysicalAddress
    public let pageSize: PageSize
    public let permissions: PagePermissions

    init(virtualAddress: GuestVirtualAddress, frame: GuestPhysicalAddress, pageSize: PageSize, permissions: PagePermissions) {
        self.virtualAddress = virtualAddress
        self.physicalAddress = GuestPhysicalAddress(frame.rawValue | virtualAddress.pageOffset(for: pageSize))
        self.pageSize = pageSize
        self.permissions = permissions
    }

    /// Guest-physical start of the page.
    public var pageBase: GuestPhysicalAddress { physicalAddress.alignedDown(to: pageSize.bytes) }

    /// Guest-virtual start of the page.
    public var virtualPageBase: GuestVirtualAddress { virtualAddress.pageBase(for: pageSize) }

    /// Bytes from `virtualAddress` to the end of its page (at least 1).
    public var bytesToPageEnd: UInt64 { pageSize.bytes - virtualAddress.pageOffset(for: pageSize) }

    /// Whether `address` lies in the same page.
    public func covers(_ address: GuestVirtualAddress) -> Bool { address.pageBase(for: pageSize) == virtualPageBase }

    /// The translation of another address in the same page.
    func rebased(to address: GuestVirtualAddress) -> Translation {
        Translation(virtualAddress: address, frame: pageBase, pageSize: pageSize, permissions: permissions)
    }

    public var description: String { "\(virtualAddress) -> \(physicalAddress) (\(pageSize) page, \(permissions))" }
}
