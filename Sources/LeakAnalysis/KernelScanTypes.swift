import Introspection
import Reachability

/// One kernel object the caller knows to be live (from its kernel ledger).
public struct KernelScanObject: Sendable, Hashable {
    public var address: UInt64
    public var size: UInt64
    /// When it was allocated, in the caller's clock seconds (the same clock as `now`).
    public var allocatedAt: Double

    public init(address: UInt64, size: UInt64, allocatedAt: Double) {
        self.address = address
        self.size = size
        self.allocatedAt = allocatedAt
    }
}

/// kmemleak's rules against transient false positives.
public struct KernelLeakRules: Sendable, Equatable {
    /// An object younger than this (caller's clock seconds) is not reported.
    public var minimumAge: Double
    /// An object is reported only after this many consecutive scans found it unreferenced.
    public var consecutiveScans: Int
    /// Most objects one scan accepts; more make the scan incomplete.
    public var maximumObjects: Int
    /// Largest object accepted; a larger one makes the scan incomplete (a size no allocator gives).
    public var maximumObjectBytes: UInt64

    public init(minimumAge: Double = 5, consecutiveScans: Int = 3, maximumObjects: Int = 1 << 24,
                maximumObjectBytes: UInt64 = 1 << 32) {
        self.minimumAge = minimumAge
        self.consecutiveScans = consecutiveScans
        self.maximumObjects = maximumObjects
        self.maximumObjectBytes = maximumObjectBytes
    }
}

/// Why an unreferenced object was not reported (yet).
public enum KernelLeakHold: String, Sendable, Codable, CaseIterable {
    /// Younger than the minimum age.
    case tooYoung = "too young"
    /// Unreferenced in fewer consecutive scans than the rules ask.
    case fewerScans = "not yet unreferenced in enough consecutive scans"
    /// A page of it was written since the previous scan (it is in use; its contents were roots).
    case writtenSinceLastScan = "written since the last scan"
    /// The scan was incomplete: it proves only reachability.
    case scanIncomplete = "the scan was incomplete"
}

/// What one scan concluded about one object.
public struct KernelObjectVerdict: Sendable, Equatable {
    public var object: KernelScanObject
    /// Its class; nil when an incomplete scan did not prove it reachable. Never `.possiblyLost`:
    /// every interior pointer references an object.
    public var reachability: ReachabilityClass?
    /// For an indirect leak, the address of the direct leak that leads to it.
    public var leader: UInt64?
    /// For a direct leak, the bytes of the indirect leaks under it.
    public var indirectBytes: UInt64
    /// Scans in a row (this one included) that found it unreferenced.
    public var unreferencedScans: Int
    /// Whether it is reported as leaked: unreferenced and no hold applies (or it was reported
    /// before and is still unreferenced).
    public var reported: Bool
    /// For an unreferenced object not reported: why not.
    public var holds: [KernelLeakHold]

    public init(object: KernelScanObject, reachability: ReachabilityClass?, leader: UInt64?, indirectBytes: UInt64,
                unreferencedScans: Int, reported: Bool, holds: [KernelLeakHold]) {
        self.object = object
        self.reachability = reachability
        self.leader = leader
        self.indirectBytes = indirectBytes
        self.unreferencedScans = unreferencedScans
        self.reported = reported
        self.holds = holds
    }
}

/// The figures of one kernel scan.
public struct KernelScanStatistics: Sendable, Equatable {
    /// Root bytes by kind, conservative kinds after the objects and freed slots were taken out.
    public var rootBytes: [KernelRootRange.Kind: UInt64] = [:]
    /// Conservative root bytes before that.
    public var conservativeBytesBeforeSubtraction: UInt64 = 0
    public var rootRanges = 0
    public var registerWords = 0
    public var perCPUUnits = 0
    public var stacks = 0
    public var vmallocAreas = 0
    public var pageCensus = KernelPageCensus()
    public var objects = 0
    /// Objects whose pages were written since the last scan (their contents were roots).
    public var writtenObjects = 0
    public var bytesScanned: UInt64 = 0
    /// Seconds spent enumerating roots, and marking plus verdicts.
    public var rootSeconds = 0.0
    public var markSeconds = 0.0
    /// The frame cache's part, when the scan had one.
    public var cache: CacheFigures?

    /// Frames a scan read from guest memory and frames the cache served, and what the cache
    /// holds after the scan.
    public struct CacheFigures: Sendable, Equatable {
        public var framesRead: Int
        public var framesReused: Int
        public var storedBytes: UInt64

        public init(framesRead: Int, framesReused: Int, storedBytes: UInt64) {
            (self.framesRead, self.framesReused, self.storedBytes) = (framesRead, framesReused, storedBytes)
        }
    }

    public init() {}

    public var totalRootBytes: UInt64 { UInt64.saturatedSum(rootBytes.values) }
}

/// The result of one kernel scan.
public struct KernelScanResult: Sendable {
    /// One verdict per object given (duplicates of an address: the latest allocation only), in address order.
    public var verdicts: [KernelObjectVerdict]
    public var statistics: KernelScanStatistics
    /// Whether every root was enumerated and read and every object scanned. When false, no object
    /// that was not reported before is reported by this scan.
    public var complete: Bool
    /// What made it incomplete.
    public var problems: [String]

    /// The objects reported as leaked.
    public var reported: [KernelObjectVerdict] { verdicts.filter(\.reported) }
}
