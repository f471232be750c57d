import GuestMemory

/// A kind of access a user-mode (CPL3) instruction makes.
public enum UserAccessKind: Sendable {
    case read, write, fetch
}

/// Why a user-mode access would not complete: the exception the CPU would raise for it.
public enum UserAccessFault: Error, Equatable, Sendable, CustomStringConvertible {
    /// A page fault at `address` (CR2) with the x86 error code (bit 0 present, 1 write, 2 user,
    /// 3 reserved bit, 4 instruction fetch).
    case pageFault(address: UInt64, errorCode: UInt32)
    /// The address is not canonical (#GP, or #SS for a stack access).
    case nonCanonical(address: UInt64)

    public static let present: UInt32 = 1, write: UInt32 = 2, user: UInt32 = 4, reservedBit: UInt32 = 8, fetch: UInt32 = 16

    public var description: String {
        switch self {
        case .pageFault(let address, let code):
            return "user access at 0x\(String(address, radix: 16)) would page-fault (error code 0x\(String(code, radix: 16)))"
        case .nonCanonical(let address): return "0x\(String(address, radix: 16)) is not canonical"
        }
    }
}

extension AddressSpace {
    /// Checks that a user-mode `access` of `count` bytes at `va` would complete without a fault,
    /// page by page, with the entry bits of every level: present and user everywhere, writable for
    /// a write, not execute-disabled for a fetch when `noExecute` (EFER.NXE) is on. Throws the
    /// fault of the first page that fails. The accessed and dirty bits are not set.
    public func checkUserAccess(_ va: UInt64, count: Int, _ access: UserAccessKind,
                                noExecute: Bool = true) throws(UserAccessFault) {
        guard count > 0 else { return }
        let (last, wraps) = va.addingReportingOverflow(UInt64(count - 1))
        guard !wraps else { throw .nonCanonical(address: va) }
        var code = UserAccessFault.user
        if access == .write { code |= UserAccessFault.write }
        if access == .fetch && noExecute { code |= UserAccessFault.fetch }
        var page = va & ~0xFFF
        while true {
            let at = max(page, va)
            let translation: Translation
            do {
                translation = try translate(GuestVirtualAddress(at))
            } catch {
                switch error {
                case .nonCanonical: throw .nonCanonical(address: at)
                case .notPresent: throw .pageFault(address: at, errorCode: code)
                case .reservedPageSize: throw .pageFault(address: at, errorCode: code | UserAccessFault.present | UserAccessFault.reservedBit)
                case .rootOutsideMemory, .tableOutsideMemory:
                    throw .pageFault(address: at, errorCode: code | UserAccessFault.present | UserAccessFault.reservedBit)
                }
            }
            let p = translation.permissions
            let allowed = p.present && p.user && (access != .write || p.writable) && (access != .fetch || !noExecute || !p.noExecute)
            guard allowed else { throw .pageFault(address: at, errorCode: code | UserAccessFault.present) }
            let next = page &+ 0x1000
            if next == 0 || next > last { return }
            page = next
        }
    }
}
