/// What a conservative scan concluded about one live block, in valgrind memcheck's terms.
public enum ReachabilityClass: String, Sendable, Codable, CaseIterable, Comparable {
    /// Nothing points to it, not even from another leaked block ("definitely lost"). In a group
    /// of leaked blocks that point to each other, one (the clique leader) is direct.
    case directLeak = "definitely lost"
    /// Only leaked blocks point to it ("indirectly lost").
    case indirectLeak = "indirectly lost"
    /// Reachable from the roots, but only through a pointer into its middle somewhere on the way
    /// ("possibly lost").
    case possiblyLost = "possibly lost"
    /// A chain of pointers to block starts leads to it from a root ("still reachable").
    case reachable = "still reachable"

    /// Leaks first.
    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// Whether a report counts it as a leak.
    public var isLeak: Bool { self != .reachable }
}
