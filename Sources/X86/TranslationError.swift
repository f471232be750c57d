import GuestMemory

/// Why a guest-virtual address could not be translated. Levels count from the leaf table:
/// 1 = PT, 2 = PD, 3 = PDPT, 4 = PML4, 5 = PML5. Entry addresses are guest-physical.
public enum TranslationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The address is not sign-extended from the mode's top bit.
    case nonCanonical(GuestVirtualAddress, mode: PageTableMode)
    /// The top-level table (from CR3) is not in guest RAM.
    case rootOutsideMemory(GuestVirtualAddress, root: GuestPhysicalAddress)
    /// The entry at `level` has P clear.
    case notPresent(GuestVirtualAddress, level: Int, entryAddress: GuestPhysicalAddress)
    /// The entry at `level` (4 or 5) has PS set, which is reserved there.
    case reservedPageSize(GuestVirtualAddress, level: Int, entryAddress: GuestPhysicalAddress)
    /// The entry at `level` points to a next-level table outside guest RAM.
    case tableOutsideMemory(GuestVirtualAddress, level: Int, entryAddress: GuestPhysicalAddress, table: GuestPhysicalAddress)

    /// The address whose walk failed.
    public var virtualAddress: GuestVirtualAddress {
        switch self {
        case .nonCanonical(let va, _), .rootOutsideMemory(let va, _), .notPresent(let va, _, _),
             .reservedPageSize(let va, _, _), .tableOutsideMemory(let va, _, _, _):
            return va
        }
    }

    static func tableName(level: Int) -> String {
        switch level {
        case 1: return "PT"
        case 2: return "PD"
        case 3: return "PDPT"
        case 4: return "PML4"
        case 5: return "PML5"
        default: return "level-\(level)"
        }
    }

    public var description: String {
        switch self {
        case .nonCanonical(let va, let mode):
            return "\(va) is not canonical with \(mode)"
        case .rootOutsideMemory(let va, let root):
            return "translating \(va): the top-level page table at \(root) is outside guest RAM"
        case .notPresent(let va, let level, let entry):
            return "\(va) is not mapped: \(Self.tableName(level: level)) entry at \(entry) is not present"
        case .reservedPageSize(let va, let level, let entry):
            return "translating \(va): \(Self.tableName(level: level)) entry at \(entry) has the reserved page-size bit set"
        case .tableOutsideMemory(let va, let level, let entry, let table):
            return "translating \(va): \(Self.tableName(level: level)) entry at \(entry) points to a table at \(table) outside guest RAM"
        }
    }
}
