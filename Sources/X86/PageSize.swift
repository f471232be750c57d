/// Size of a page mapped by a leaf entry: 4 KiB (PT), 2 MiB (PD with PS) or 1 GiB (PDPT with PS).
public enum PageSize: UInt64, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case fourKiB = 0x1000
    case twoMiB = 0x20_0000
    case oneGiB = 0x4000_0000

    /// The page size a leaf entry at `level` maps (1, 2 or 3), or nil for levels without leaves.
    public init?(leafLevel level: Int) {
        switch level {
        case 1: self = .fourKiB
        case 2: self = .twoMiB
        case 3: self = .oneGiB
        default: return nil
        }
    }

    public var bytes: UInt64 { rawValue }

    /// Mask of the address bits that are the offset inside a page of this size.
    public var offsetMask: UInt64 { rawValue - 1 }

    /// Level of the table whose entry maps a page of this size.
    public var leafLevel: Int {
        switch self {
        case .fourKiB: return 1
        case .twoMiB: return 2
        case .oneGiB: return 3
        }
    }

    public var description: String {
        switch self {
        case .fourKiB: return "4 KiB"
        case .twoMiB: return "2 MiB"
        case .oneGiB: return "1 GiB"
        }
    }
}
