import Foundation

/// Monotonic nanoseconds since tracking started: the time of every ledger event and scan.
public struct TrackerClock: Sendable {
    let start: UInt64

    public init() { start = DispatchTime.now().uptimeNanoseconds }

    /// A clock that reads `elapsed` nanoseconds now: tracking restored from a snapshot goes on
    /// from the time it was saved at.
    public init(continuingFrom elapsed: UInt64) {
        let now = DispatchTime.now().uptimeNanoseconds
        start = now &- min(elapsed, now)
    }

    public var now: UInt64 { DispatchTime.now().uptimeNanoseconds &- start }

    /// Seconds since tracking started.
    public var seconds: Double { Double(now) / 1e9 }
}
