extension HeapBlockIndex {
    /// For each block of `older` (whose allocation times are `olderTimes`), its index here when the
    /// same block is still here (same start, size and allocation time, `times` being this index's),
    /// else -1: what a scan may carry over from the index it kept to a rebuilt one.
    public func survivors(of older: HeapBlockIndex, olderTimes: [UInt64], times: [UInt64]) -> [Int] {
        var map = [Int](repeating: -1, count: older.count)
        var j = 0
        for i in 0..<older.count {
            while j < count, starts[j] < older.starts[i] { j += 1 }
            if j < count, starts[j] == older.starts[i], sizes[j] == older.sizes[i], times[j] == olderTimes[i] { map[i] = j }
        }
        return map
    }
}
