/// The user half of an x86-64 address space as Linux lays it out with 4-level paging: every block,
/// root and pointer a scan deals with lies below `end` (TASK_SIZE_MAX, 2^47 − 4096). Anything a
/// guest claims beyond it (a forged allocation result, a wild mapping) is refused, not scanned.
public enum UserSpace {
    /// The first address past user space.
    public static let end: UInt64 = 0x0000_7FFF_FFFF_F000

    /// Whether `size` bytes at `start` lie in user space without wrapping.
    public static func contains(start: UInt64, size: UInt64) -> Bool {
        let (end, overflow) = start.addingReportingOverflow(size)
        return !overflow && end <= Self.end
    }

    /// The part of `range` that lies in user space (empty if none).
    public static func clip(_ range: Range<UInt64>) -> Range<UInt64> {
        let low = min(range.lowerBound, end), high = min(range.upperBound, end)
        return low..<max(low, high)
    }
}

extension Range where Bound == UInt64 {
    /// `lower..<upper` when the bounds are in order, else nil: the way to build a range from guest
    /// values (`a..<b` traps when b < a).
    public static func ordered(_ lower: UInt64, _ upper: UInt64) -> Range<UInt64>? {
        lower <= upper ? lower..<upper : nil
    }

    /// `start..<start + count`, or up to 2^64 − 1 when that would wrap.
    public static func clamped(start: UInt64, count: UInt64) -> Range<UInt64> {
        start..<start.addingSaturated(count)
    }

    /// Its length (never traps, unlike `count`, which is an `Int`).
    public var length: UInt64 { upperBound &- lowerBound }
}
