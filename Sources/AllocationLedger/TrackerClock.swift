import Foundation

/// Monotonic nanoseconds since tracking started: the time of every ledger event and scan.
public struct TrackerClock: Sendable {
    let start = DispatchTime.now().uptimeNanoseconds

    public init() {}

    public var now: UInt64 { DispatchTime.now().uptimeNanoseconds &- start }

    /// Seconds since tracking started.
    public var seconds: Double { Double(now) / 1e9 }
}
