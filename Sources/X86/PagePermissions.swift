/// Effective access rights of a virtual page, combined over every level of its walk.
/// Reports the entry bits only: CR0.WP, SMEP, SMAP and protection keys are not applied.
public struct PagePermissions: Hashable, Sendable, CustomStringConvertible {
    /// The page is mapped. When false, the other fields are false.
    public var present: Bool
    /// R/W set at every level.
    public var writable: Bool
    /// U/S set at every level.
    public var user: Bool
    /// XD (bit 63) set at some level. Always reported; it only takes effect when EFER.NXE is set
    /// (otherwise the bit is reserved and the guest's own accesses fault).
    public var noExecute: Bool

    public init(present: Bool = true, writable: Bool, user: Bool, noExecute: Bool) {
        self.present = present
        self.writable = present && writable
        self.user = present && user
        self.noExecute = present && noExecute
    }

    /// A page that is not mapped.
    public static let notPresent = PagePermissions(present: false, writable: false, user: false, noExecute: false)

    public var description: String {
        guard present else { return "not present" }
        return (user ? "u" : "s") + "r" + (writable ? "w" : "-") + (noExecute ? "-" : "x")
    }
}
