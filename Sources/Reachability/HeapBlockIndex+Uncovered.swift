extension HeapBlockIndex {
    /// The parts of `range` that no block covers: a root range with the live blocks cut out (a
    /// block is never a root; it is scanned only when a pointer reaches it).
    public func uncovered(_ range: Range<UInt64>) -> [Range<UInt64>] {
        guard count > 0, !range.isEmpty else { return range.isEmpty ? [] : [range] }
        // The last block starting at or below the range's start, then every block starting inside it.
        var low = 0, high = starts.count
        while low < high {
            let mid = (low + high) / 2
            if starts[mid] <= range.lowerBound { low = mid + 1 } else { high = mid }
        }
        var i = max(0, low - 1)
        var pieces: [Range<UInt64>] = []
        var cursor = range.lowerBound
        while i < starts.count, starts[i] < range.upperBound {
            let blockEnd = end(of: i)
            // A zero-size block covers no byte.
            if blockEnd > cursor, blockEnd > starts[i] {
                if starts[i] > cursor { pieces.append(cursor..<starts[i]) }
                cursor = blockEnd
            }
            i += 1
        }
        if cursor < range.upperBound { pieces.append(cursor..<range.upperBound) }
        return pieces
    }
}
