import Reachability

/// The `class` label values of the outstanding metrics, in the report's order.
enum ReachabilityName: String, CaseIterable, Sendable {
    case definitelyLost = "definitely_lost"
    case indirectlyLost = "indirectly_lost"
    case possiblyLost = "possibly_lost"
    case stillReachable = "still_reachable"
    case notScanned = "not_scanned"

    /// The class in `ClassTotals`' subscript (nil: not scanned).
    var reachability: ReachabilityClass? {
        switch self {
        case .definitelyLost: return .directLeak
        case .indirectlyLost: return .indirectLeak
        case .possiblyLost: return .possiblyLost
        case .stillReachable: return .reachable
        case .notScanned: return nil
        }
    }
}
