extension HeapBlockIndex {
    /// The start of the block a word points anywhere into (its first byte to its last), with no
    /// allocator-specific exceptions: kernel objects have no in-band allocator headers, so every
    /// interior pointer counts. A zero-size block is hit only at its start.
    public func startOfBlock(containing value: UInt64) -> UInt64? {
        var low = 0, high = starts.count
        while low < high {
            let mid = (low + high) / 2
            if starts[mid] <= value { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let i = low - 1
        guard value == starts[i] || value &- starts[i] < sizes[i] else { return nil }
        return starts[i]
    }
}
