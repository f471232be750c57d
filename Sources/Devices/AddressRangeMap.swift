/// A sorted set of non-overlapping, inclusive address ranges mapped to values.
/// Not thread-safe on its own; the buses wrap it in a `Mutex`.
struct AddressRangeMap<Value> {
    struct Entry {
        let first: UInt64
        let last: UInt64  // inclusive, so a range may end at the top of the address space
        let value: Value
    }

    private(set) var entries: [Entry] = []

    /// Inserts `[first, last]`, or throws `.overlap` if it intersects an existing range.
    mutating func insert(first: UInt64, last: UInt64, value: Value) throws(BusError) {
        let index = entries.firstIndex { $0.first > first } ?? entries.endIndex
        if index > entries.startIndex, entries[index - 1].last >= first {
            throw .overlap(base: first, length: last &- first &+ 1)
        }
        if index < entries.endIndex, entries[index].first <= last {
            throw .overlap(base: first, length: last &- first &+ 1)
        }
        entries.insert(Entry(first: first, last: last, value: value), at: index)
    }

    /// The entry whose range contains `address`, if any.
    func lookup(_ address: UInt64) -> Entry? {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            let entry = entries[mid]
            if address < entry.first {
                high = mid
            } else if address > entry.last {
                low = mid + 1
            } else {
                return entry
            }
        }
        return nil
    }
}
