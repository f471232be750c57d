/// The CFI of one ELF file as a sorted table of `CallFrameRow`s keyed by file offset, so that a
/// code address in any process that maps the file finds its rule with one binary search
/// (`address − mapping start + mapping's file offset`). Built once per file
/// (`CallFrameTable(file:)`) and shared by every stack walk.
public struct CallFrameTable: Sendable {
    /// Rows sorted by start, not overlapping; adjacent rows with the same rule are merged.
    public private(set) var rows: [CallFrameRow] = []

    /// Builds a table from rows in any order; overlapping rows keep the first by start.
    public init(rows unsorted: [CallFrameRow]) {
        for row in unsorted.sorted(by: { $0.start < $1.start }) where row.length > 0 {
            if let last = rows.last {
                if row.start < last.end { continue }
                if row.start == last.end, row.rule == last.rule, UInt64(last.length) + UInt64(row.length) <= UInt64(UInt32.max) {
                    rows[rows.count - 1].length += row.length
                    continue
                }
            }
            rows.append(row)
        }
    }

    /// The rule at a file offset, or nil where the file has no CFI.
    public func rule(atFileOffset offset: UInt64) -> CallFrameRule? {
        let low = partitionPoint(count: rows.count) { rows[$0].start <= offset }
        guard low > 0, offset < rows[low - 1].end else { return nil }
        return rows[low - 1].rule
    }
}
