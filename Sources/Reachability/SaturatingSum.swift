/// Byte totals built from guest-supplied sizes saturate at `UInt64.max` instead of trapping; a
/// report shows a saturated total as a lower bound ("≥").
extension UInt64 {
    /// `self + other`, or `UInt64.max` when the sum does not fit.
    public func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    /// The sum of `values`, saturated at `UInt64.max`.
    public static func saturatedSum(_ values: some Sequence<UInt64>) -> UInt64 {
        values.reduce(0) { $0.addingSaturated($1) }
    }

    /// Whether this total reached the saturation point (it is then only a lower bound).
    public var isSaturated: Bool { self == .max }
}
