import AllocationLedger
import Reachability

/// The guest kernel's part of a report (`--track kernel` / `all`): what the kernel tracker
/// counted, the latest kernel reachability scan, and the objects it reports as leaked, grouped
/// by allocator, cache and stack in the layout of a process's groups.
public struct KernelReport: Sendable, Codable, Equatable {
    /// Objects allocated and freed under tracking, and those outstanding now.
    public var allocations: Int
    public var frees: Int
    public var outstandingObjects: Int
    public var outstandingBytes: UInt64
    /// Frees of objects allocated before tracking started (those objects are unknown to the ledger).
    public var freesOfObjectsFromBeforeTracking: Int
    /// Outstanding objects by class in the latest scan: definitely and indirectly lost count only
    /// reported leaks; unreferenced objects that kmemleak's rules still hold are in `held`.
    public var classes: ClassTotals
    /// Unreferenced in the latest scan but not reported (yet): too young, too few scans, written.
    public var held: BlockTotal
    /// Reported leaks, largest first.
    public var groups: [KernelObjectGroup]
    /// The call sites with the most outstanding bytes (at most 20), each with its objects by class.
    public var outstandingSites: [KernelSiteSummary]
    public var findings: [KernelFindingReport]
    /// The latest kernel scan (nil: none ran).
    public var scan: KernelScanReport?
    public var notes: [String]
}

/// The outstanding objects of one call site and allocator, by class in the latest scan.
public struct KernelSiteSummary: Sendable, Codable, Equatable {
    public var allocator: KernelAllocator
    public var cache: String?
    public var callSite: ReportFrame
    public var objects: Int
    public var bytes: UInt64
    /// As `KernelReport.classes` (reported leaks only as lost; held objects counted in `held`).
    public var classes: ClassTotals
    public var held: BlockTotal
}

/// Leaked kernel objects that share allocator, cache, call site, stack and class.
public struct KernelObjectGroup: Sendable, Codable, Equatable {
    public var allocator: KernelAllocator
    /// The slab cache's name (`kmem_cache_alloc` objects).
    public var cache: String?
    public var objects: Int
    /// Bytes the allocator gave (the object sizes a scan covers) and bytes the callers asked for.
    public var bytes: UInt64
    public var requestedBytes: UInt64
    /// Allocated sizes, largest first (at most 16 listed).
    public var sizes: [UInt64]
    /// Seconds since tracking started: oldest and newest object of the group.
    public var oldestSeconds: Double
    public var newestSeconds: Double
    /// The caller the kernel named (`_RET_IP_`), file:line from the outermost inlined call.
    public var callSite: ReportFrame
    /// Kernel return addresses, innermost first.
    public var frames: [ReportFrame]
    public var reachability: ReachabilityClass
    /// For direct leaks: bytes of the indirect leaks they lead to.
    public var indirectBytes: UInt64
    /// The objects themselves, oldest first (at most `BlockDetail.limit`).
    public var details: [KernelObjectDetail]
}

/// One leaked kernel object.
public struct KernelObjectDetail: Sendable, Codable, Equatable {
    public var address: UInt64
    public var size: UInt64
    public var requestedSize: UInt64
    public var allocatedSeconds: Double
    /// vCPU and task (thread id) that allocated it.
    public var cpu: Int32
    public var task: Int32
    /// Consecutive scans that found it unreferenced.
    public var unreferencedScans: Int
}

/// A double or mismatched kernel free.
public struct KernelFindingReport: Sendable, Codable, Equatable {
    public var kind: String
    public var address: UInt64
    public var freedBy: String?
    public var allocatedBy: String?
    public var callSite: ReportFrame
    public var seconds: Double
}

/// The figures of the latest kernel scan.
public struct KernelScanReport: Sendable, Codable, Equatable {
    public var seconds: Double
    /// Scans so far.
    public var scans: Int
    public var objects: Int
    public var rootBytes: UInt64
    public var bytesScanned: UInt64
    /// Objects written since the previous scan (their contents were roots; they are not reported this scan).
    public var writtenObjects: Int
    /// Seconds the guest was paused for the scan.
    public var pauseSeconds: Double
    public var complete: Bool
    public var problems: [String]
    /// Frames read from guest memory and frames the frame cache served; absent when the scan had
    /// no cache (and in reports written before it had one).
    public var pagesRead: Int?
    public var pagesReused: Int?
    /// Bytes the frame cache holds after the scan.
    public var cacheBytes: UInt64?

    public init(seconds: Double, scans: Int, objects: Int, rootBytes: UInt64, bytesScanned: UInt64, writtenObjects: Int,
                pauseSeconds: Double, complete: Bool, problems: [String], cache: KernelScanStatistics.CacheFigures? = nil) {
        self.seconds = seconds
        self.scans = scans
        self.objects = objects
        self.rootBytes = rootBytes
        self.bytesScanned = bytesScanned
        self.writtenObjects = writtenObjects
        self.pauseSeconds = pauseSeconds
        self.complete = complete
        self.problems = problems
        (pagesRead, pagesReused, cacheBytes) = (cache?.framesRead, cache?.framesReused, cache?.storedBytes)
    }
}

extension LeakReport {
    /// A report with no process, only the kernel section (`--track kernel`).
    public static func kernelOnly(_ kernel: KernelReport, seconds: Double) -> LeakReport {
        var report = LeakReport(seconds: seconds, processes: [], summary: Summary(
            outstandingBlocks: 0, outstandingBytes: 0, allocationSites: 0, processes: 0, findings: 0, classes: ClassTotals()))
        report.kernel = kernel
        return report
    }

    /// Definite leaks in user space and in the kernel (what `--error-exitcode` counts).
    public var definiteLeaks: Int {
        summary.classes.definitelyLost.blocks + (kernel?.classes.definitelyLost.blocks ?? 0)
    }
}
