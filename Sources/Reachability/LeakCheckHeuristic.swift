/// valgrind memcheck's leak-check heuristics (`--leak-check-heuristics`): interior pointers that
/// C and C++ runtimes make on purpose. An interior pointer that matches one counts as a start
/// pointer; the block it reaches is then "still reachable", via that heuristic.
///
/// Each rule is a pure predicate over the block's size and its bytes (read by the caller, which may
/// fail: a word it cannot read never matches). Every value is guest data and is handled with
/// checked arithmetic.
public enum LeakCheckHeuristic: String, Sendable, Codable, CaseIterable, Comparable {
    /// A pre-C++11 libstdc++ `std::string` rep (length, capacity, refcount, then the characters):
    /// the pointer is 24 bytes (3 words) in, the block is exactly 24 + capacity + 1 bytes and the
    /// length is at most the capacity.
    case stdString = "stdstring"
    /// A block whose first 8 bytes hold the size of the rest (sqlite3MemMalloc): the pointer is 8
    /// bytes in and the first word is the block's size − 8, not 0.
    case length64
    /// A `new[]` array of objects with destructors, after its element-count cookie: the pointer is
    /// 8 bytes in and the first word is a count, not 0, that divides the block's size − 8.
    case newArray = "newarray"
    /// An object with several bases, seen through a secondary base: the pointer is word-aligned and
    /// both the word it points at and the block's first word point into read-only data of a mapped
    /// file (where vtables live).
    case multipleInheritance = "multipleinheritance"

    /// In the order valgrind tries them (the first that matches is the one reported).
    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// Whether an interior pointer `offset` bytes into a block of `blockSize` bytes matches this
    /// heuristic. `word(k)` is the block's 8-byte word at byte offset `k` (nil: unreadable, or not
    /// wholly inside the block); `isVirtualTable(v)` says whether `v` may point at a vtable.
    public func matches(offset: UInt64, blockSize: UInt64, word: (UInt64) -> UInt64?,
                        isVirtualTable: (UInt64) -> Bool) -> Bool {
        guard offset > 0, offset < blockSize else { return false }
        switch self {
        case .stdString:
            guard offset == 24, let capacity = word(8), let length = word(0) else { return false }
            let (withHeader, overflow) = capacity.addingReportingOverflow(25)
            return !overflow && withHeader == blockSize && length <= capacity
        case .length64:
            guard offset == 8, blockSize >= 8, let length = word(0) else { return false }
            return length > 0 && length == blockSize - 8
        case .newArray:
            guard offset == 8, blockSize >= 8, let count = word(0) else { return false }
            return count > 0 && (blockSize - 8) % count == 0
        case .multipleInheritance:
            guard offset & 7 == 0, let inner = word(offset), isVirtualTable(inner),
                  let first = word(0), isVirtualTable(first) else { return false }
            return true
        }
    }
}

/// Which heuristics a leak check uses, and where vtables can be (for `multipleinheritance`).
public struct LeakCheckHeuristics: Sendable, Equatable {
    /// The heuristics in use, in valgrind's order.
    public private(set) var enabled: [LeakCheckHeuristic]
    /// Read-only data of the process's mapped files (sorted, disjoint), where a vtable pointer must
    /// point; filled per scan.
    public var readOnlyData: [Range<UInt64>] = []

    public init(_ enabled: some Sequence<LeakCheckHeuristic>) {
        self.enabled = Set(enabled).sorted()
    }

    /// valgrind's default since 3.11: all four.
    public static let all = LeakCheckHeuristics(LeakCheckHeuristic.allCases)
    public static let none = LeakCheckHeuristics([])

    /// Parses valgrind's option syntax: `all`, `none`, or a comma-separated list of names.
    public init(parsing text: String) throws(LeakCheckHeuristicsError) {
        var chosen: [LeakCheckHeuristic] = []
        for name in text.split(separator: ",", omittingEmptySubsequences: false).map({ String($0.filter { $0 != " " }) }) {
            switch name {
            case "all": chosen += LeakCheckHeuristic.allCases
            case "none": continue
            default:
                guard let h = LeakCheckHeuristic(rawValue: name) else { throw .unknown(name) }
                chosen.append(h)
            }
        }
        self.init(chosen)
    }

    /// The spelling `init(parsing:)` reads back.
    public var description: String {
        enabled.isEmpty ? "none" : enabled == LeakCheckHeuristic.allCases ? "all" : enabled.map(\.rawValue).joined(separator: ",")
    }

    /// Whether `value` may be a vtable address: word-aligned, past page 0, inside read-only data.
    public func isVirtualTable(_ value: UInt64) -> Bool {
        guard value & 7 == 0, value >= 4096 else { return false }
        var low = 0, high = readOnlyData.count
        while low < high {
            let mid = (low + high) / 2
            if readOnlyData[mid].lowerBound <= value { low = mid + 1 } else { high = mid }
        }
        return low > 0 && readOnlyData[low - 1].contains(value)
    }

    /// The first enabled heuristic an interior pointer matches, if any.
    public func match(offset: UInt64, blockSize: UInt64, word: (UInt64) -> UInt64?) -> LeakCheckHeuristic? {
        enabled.first { $0.matches(offset: offset, blockSize: blockSize, word: word, isVirtualTable: isVirtualTable) }
    }

    /// Sorts and merges ranges into the form `readOnlyData` needs.
    public static func merged(_ ranges: [Range<UInt64>]) -> [Range<UInt64>] {
        var result: [Range<UInt64>] = []
        for r in ranges.filter({ !$0.isEmpty }).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = result.last, r.lowerBound <= last.upperBound {
                result[result.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                result.append(r)
            }
        }
        return result
    }
}

/// A `--leak-check-heuristics` value that names no heuristic.
public enum LeakCheckHeuristicsError: Error, Equatable, CustomStringConvertible {
    case unknown(String)

    public var description: String {
        switch self {
        case .unknown(let name):
            "unknown leak-check heuristic '\(name)' (use all, none, or a list of stdstring, length64, newarray, multipleinheritance)"
        }
    }
}
