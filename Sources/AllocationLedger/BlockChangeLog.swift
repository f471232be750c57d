/// The starts of one space's blocks that were allocated or released since a version of the
/// ledger, so that a scan that kept the blocks of that version can bring them up to date at the
/// cost of what changed. Bounded: past `capacity` changes it only says that it overflowed.
struct BlockChangeLog: Sendable {
    /// The version the log starts at.
    let since: UInt64
    private(set) var starts: [UInt64] = []
    private(set) var overflowed = false
    /// 4 Mi starts (32 MiB): a space that changes more between two scans is taken whole.
    static let capacity = 1 << 22

    init(since: UInt64) { self.since = since }

    mutating func note(_ start: UInt64) {
        guard !overflowed else { return }
        guard starts.count < Self.capacity else {
            overflowed = true
            starts = []
            return
        }
        starts.append(start)
    }
}
