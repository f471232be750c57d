import Foundation

/// What one scan may spend, checked as it goes: wall-clock time up to a deadline, and memory for
/// the candidate words it keeps (the frame cache plus this scan's own page map). When either runs
/// out, the scan stops where it is and its result is incomplete.
public struct ScanBudget: Sendable {
    /// Monotonic nanoseconds (on `clock`) at which the scan must stop; nil: no time limit.
    public var deadline: UInt64?
    /// Bytes the frame cache and the scan's page map may hold together.
    public var memoryBytes: UInt64
    /// Monotonic nanoseconds; replaceable for tests.
    public var clock: @Sendable () -> UInt64

    public init(deadline: UInt64? = nil, memoryBytes: UInt64 = ScanLimits.defaultMemoryBytes,
                clock: @escaping @Sendable () -> UInt64 = ScanBudget.monotonicNanoseconds) {
        self.deadline = deadline
        self.memoryBytes = memoryBytes
        self.clock = clock
    }

    /// A budget that never runs out (tests, benchmarks that must see everything).
    public static let unlimited = ScanBudget(deadline: nil, memoryBytes: .max)

    /// The host's monotonic clock in nanoseconds.
    @Sendable public static func monotonicNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// The deadline `seconds` from now on this budget's clock.
    public func deadline(after seconds: Double) -> UInt64 {
        clock().addingSaturated(ScanLimits.nanoseconds(seconds))
    }
}

/// Why a scan stopped before it was done.
public enum ScanStop: String, Sendable, Codable, Equatable {
    case timeLimit = "time limit reached"
    case memoryLimit = "memory limit reached"
}

/// The limits a user sets on scans (`run --scan-pause-limit`, `--scan-time-limit`,
/// `--scan-memory-limit`).
public struct ScanLimits: Sendable, Equatable {
    public static let defaultPauseSeconds: Double = 10
    public static let defaultScanSeconds: Double = 60
    public static let defaultMemoryBytes: UInt64 = 1 << 30

    /// Longest the guest is held paused for the exact phase of a periodic scan (all processes of a round).
    public var pauseSeconds: Double
    /// Longest one scan round may take in all: concurrent and exact phase, or one exit scan.
    public var scanSeconds: Double
    /// Bytes of cached candidate words and per-scan page maps a scan may hold.
    public var memoryBytes: UInt64

    public init(pauseSeconds: Double = defaultPauseSeconds, scanSeconds: Double = defaultScanSeconds,
                memoryBytes: UInt64 = defaultMemoryBytes) {
        self.pauseSeconds = pauseSeconds
        self.scanSeconds = scanSeconds
        self.memoryBytes = memoryBytes
    }

    /// `seconds` in nanoseconds, clamped to [0, UInt64.max] (NaN counts as 0).
    public static func nanoseconds(_ seconds: Double) -> UInt64 {
        let ns = seconds * 1e9
        guard ns > 0 else { return 0 }
        return ns >= 1.8e19 ? .max : UInt64(ns)
    }
}
