/// Set arithmetic on address ranges, for roots that must leave out the objects they contain.
public enum RangeSubtraction {
    /// `ranges` with every byte of `holes` removed. Holes may be unsorted, overlap or be empty;
    /// the result keeps the order of `ranges` and drops empty pieces.
    public static func subtract(_ holes: [Range<UInt64>], from ranges: [Range<UInt64>]) -> [Range<UInt64>] {
        subtract(merged: merge(holes), from: ranges)
    }

    /// `subtract` with holes already as `merge` returns them (for many calls with the same holes).
    public static func subtract(merged: [Range<UInt64>], from ranges: [Range<UInt64>]) -> [Range<UInt64>] {
        guard !merged.isEmpty else { return ranges.filter { !$0.isEmpty } }
        var result: [Range<UInt64>] = []
        for range in ranges where !range.isEmpty {
            // First hole that ends after the range starts.
            var low = 0, high = merged.count
            while low < high {
                let mid = (low + high) / 2
                if merged[mid].upperBound <= range.lowerBound { low = mid + 1 } else { high = mid }
            }
            var cursor = range.lowerBound
            var i = low
            while i < merged.count, merged[i].lowerBound < range.upperBound {
                if merged[i].lowerBound > cursor { result.append(cursor..<merged[i].lowerBound) }
                cursor = max(cursor, merged[i].upperBound)
                i += 1
            }
            if cursor < range.upperBound { result.append(cursor..<range.upperBound) }
        }
        return result
    }

    /// Sorted, non-empty, non-overlapping, non-touching ranges covering the same bytes.
    public static func merge(_ ranges: [Range<UInt64>]) -> [Range<UInt64>] {
        var result: [Range<UInt64>] = []
        for range in ranges.filter({ !$0.isEmpty }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = result.last, range.lowerBound <= last.upperBound {
                result[result.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
            } else {
                result.append(range)
            }
        }
        return result
    }
}
