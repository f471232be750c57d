import Foundation

/// Monotonic nanoseconds since tracking started.
struct TrackerClock: Sendable {
    let start = DispatchTime.now().uptimeNanoseconds

    var now: UInt64 { DispatchTime.now().uptimeNanoseconds &- start }
}
