import DebugInfo

extension HeapBlockIndex {
    /// The block that starts at `start`, if any.
    public func block(startingAt start: UInt64) -> Int? {
        let i = partitionPoint(count: starts.count) { starts[$0] < start }
        return i < starts.count && starts[i] == start ? i : nil
    }

    /// This index (whose blocks' allocation times are `times`) with the blocks at `changed` starts
    /// replaced by what is there now (nil: no block), in one pass over the sorted blocks: what a
    /// rescan needs from the ledger's change log, without building the index again from every
    /// live block. Returns the new index, its blocks' times, for each block of this index its
    /// place in the new one when it is the same block (same start, size and time) else -1, and
    /// the places of the blocks that are new; nil when the changes leave the blocks as they are.
    public func applying(_ changed: [UInt64: (size: UInt64, time: UInt64)?], times: [UInt64])
        -> (index: HeapBlockIndex, times: [UInt64], survivors: [Int], added: [Int])? {
        // A change to a start the index holds with the same size and time is no change.
        var removed = Set<Int>()
        var added: [(start: UInt64, size: UInt64, time: UInt64)] = []
        for (start, now) in changed {
            let here = block(startingAt: start)
            if let here, let now, sizes[here] == now.size, times[here] == now.time { continue }
            if let here { removed.insert(here) }
            if let now { added.append((start, now.size, now.time)) }
        }
        guard !removed.isEmpty || !added.isEmpty else { return nil }
        added.sort { $0.start < $1.start }
        var addedAt: [Int] = []
        addedAt.reserveCapacity(added.count)
        var result = HeapBlockIndex(blocks: [])
        var newTimes: [UInt64] = []
        let count = starts.count - removed.count + added.count
        result.starts.reserveCapacity(count)
        result.sizes.reserveCapacity(count)
        result.boundaries.reserveCapacity(count)
        newTimes.reserveCapacity(count)
        var survivors = [Int](repeating: -1, count: starts.count)
        var a = 0
        func appendAdded() {
            addedAt.append(result.starts.count)
            result.starts.append(added[a].start)
            result.sizes.append(added[a].size)
            result.boundaries.append(Self.allocatorBoundary(start: added[a].start, size: added[a].size))
            newTimes.append(added[a].time)
            a += 1
        }
        let gone = removed.sorted()
        var r = 0
        for i in starts.indices {
            if r < gone.count, gone[r] == i {
                r += 1
                continue
            }
            while a < added.count, added[a].start < starts[i] { appendAdded() }
            survivors[i] = result.starts.count
            result.starts.append(starts[i])
            result.sizes.append(sizes[i])
            result.boundaries.append(boundaries[i])
            newTimes.append(times[i])
        }
        while a < added.count { appendAdded() }
        result.sampleStarts()
        return (result, newTimes, survivors, addedAt)
    }
}
