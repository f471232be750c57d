import AllocationLedger
import Reachability

/// What LeakVisor reports about the guest's heaps: per process, outstanding allocations grouped by
/// allocation stack (largest first) and findings. The JSON form of `--report` is this, encoded.
public struct LeakReport: Sendable, Codable, Equatable {
    public var tool = "leakvisor"
    public var formatVersion = 2
    /// Seconds since tracking started when the report was made.
    public var seconds: Double
    public var processes: [ProcessReport]
    public var summary: Summary
    /// Caveats about the report as a whole (byte totals that reached 2^64 − 1, incomplete scans).
    public var notes: [String] = []
    /// What suppressions removed from the report, per suppression (nil: none were applied).
    public var suppressed: [SuppressedCount]? = nil
    /// The guest kernel's objects (`--track kernel` / `all`; nil otherwise).
    public var kernel: KernelReport? = nil

    public struct Summary: Sendable, Codable, Equatable {
        public var outstandingBlocks: Int
        public var outstandingBytes: UInt64
        public var allocationSites: Int
        public var processes: Int
        public var findings: Int
        /// Outstanding blocks by reachability class (blocks no scan has seen count as not scanned).
        public var classes: ClassTotals

        public init(outstandingBlocks: Int, outstandingBytes: UInt64, allocationSites: Int, processes: Int, findings: Int,
                    classes: ClassTotals) {
            self.outstandingBlocks = outstandingBlocks
            self.outstandingBytes = outstandingBytes
            self.allocationSites = allocationSites
            self.processes = processes
            self.findings = findings
            self.classes = classes
        }
    }
}

/// One address space's part of a report.
public struct ProcessReport: Sendable, Codable, Equatable {
    public var pid: Int32?
    public var command: String?
    public var executable: String?
    /// live, exited, or guest stopped.
    public var state: AddressSpaceEnd
    public var outstandingBlocks: Int
    public var outstandingBytes: UInt64
    public var allocations: Int
    public var releases: Int
    public var bytesAllocated: UInt64
    public var peakLiveBytes: UInt64
    public var groups: [AllocationGroup]
    public var findings: [FindingReport]
    /// The latest reachability scan of the process (nil: never scanned).
    public var scan: ScanReport?
    /// Allocation sites whose referenced blocks grew over the scans and are mostly stale.
    public var growth: [SiteGrowth]
    /// Allocator results refused as implausible (each also a finding, up to the findings cap).
    public var refusedBlocks: Int
}

/// Blocks and bytes per reachability class.
public struct ClassTotals: Sendable, Codable, Equatable {
    public var definitelyLost = BlockTotal()
    public var indirectlyLost = BlockTotal()
    public var possiblyLost = BlockTotal()
    public var stillReachable = BlockTotal()
    public var notScanned = BlockTotal()
    /// Of the still reachable blocks, those only an interior pointer matching a leak-check heuristic
    /// reaches, by heuristic name (valgrind's "of which reachable via heuristic"); nil when none.
    public var reachableViaHeuristic: [String: BlockTotal]?

    public init() {}

    /// Counts a still reachable block that `heuristic` made reachable.
    public mutating func addReachable(via heuristic: LeakCheckHeuristic, bytes: UInt64) {
        var byName = reachableViaHeuristic ?? [:]
        byName[heuristic.rawValue] = (byName[heuristic.rawValue] ?? BlockTotal()) + BlockTotal(blocks: 1, bytes: bytes)
        reachableViaHeuristic = byName
    }

    public subscript(_ reachability: ReachabilityClass?) -> BlockTotal {
        get {
            switch reachability {
            case .directLeak?: return definitelyLost
            case .indirectLeak?: return indirectlyLost
            case .possiblyLost?: return possiblyLost
            case .reachable?: return stillReachable
            case nil: return notScanned
            }
        }
        set {
            switch reachability {
            case .directLeak?: definitelyLost = newValue
            case .indirectLeak?: indirectlyLost = newValue
            case .possiblyLost?: possiblyLost = newValue
            case .reachable?: stillReachable = newValue
            case nil: notScanned = newValue
            }
        }
    }

    public static func + (a: Self, b: Self) -> Self {
        var r = a
        for c in [ReachabilityClass.directLeak, .indirectLeak, .possiblyLost, .reachable] as [ReachabilityClass?] + [nil] {
            r[c] = a[c] + b[c]
        }
        if let other = b.reachableViaHeuristic {
            r.reachableViaHeuristic = (a.reachableViaHeuristic ?? [:]).merging(other) { $0 + $1 }
        }
        return r
    }
}

/// A count of blocks and their bytes.
public struct BlockTotal: Sendable, Codable, Equatable {
    public var blocks = 0
    /// Saturated at 2^64 − 1 (then a lower bound).
    public var bytes: UInt64 = 0

    public init(blocks: Int = 0, bytes: UInt64 = 0) {
        self.blocks = blocks
        self.bytes = bytes
    }

    public static func + (a: Self, b: Self) -> Self {
        BlockTotal(blocks: a.blocks &+ b.blocks, bytes: a.bytes.addingSaturated(b.bytes))
    }
}

/// The latest scan of a process, as reported.
public struct ScanReport: Sendable, Codable, Equatable {
    public var seconds: Double
    public var figures: ScanFigures
    public var classes: ClassTotals
    public var notes: [String]
    /// False when the scan stopped early (a budget ran out, pages were unreadable): its blocks not
    /// proven reachable are counted as not scanned, not as leaks.
    public var complete: Bool
}

/// An allocation site whose blocks stay referenced but keep accumulating without being written:
/// growth a reachability scan alone calls "still reachable".
public struct SiteGrowth: Sendable, Codable, Equatable {
    public var function: AllocatorFunction
    /// Referenced blocks and bytes at the first and the latest of the scans compared.
    public var firstBlocks: Int
    public var lastBlocks: Int
    public var firstBytes: UInt64
    public var lastBytes: UInt64
    public var scans: Int
    public var seconds: Double
    /// Blocks of the latest scan not written for the stale threshold.
    public var staleBlocks: Int
    public var frames: [ReportFrame]
}

/// Outstanding blocks that share an allocating function and stack.
public struct AllocationGroup: Sendable, Codable, Equatable {
    public var function: AllocatorFunction
    public var blocks: Int
    public var bytes: UInt64
    /// Sizes of the blocks, largest first (at most 16 listed).
    public var sizes: [UInt64]
    /// Seconds since tracking started: oldest and newest block of the group.
    public var oldestSeconds: Double
    public var newestSeconds: Double
    public var threads: [Int32]
    /// Innermost first: the allocator's entry, then its callers.
    public var frames: [ReportFrame]
    /// The class the latest scan gave these blocks (nil: not scanned yet).
    public var reachability: ReachabilityClass?
    /// For direct leaks: bytes of the indirect leaks they lead to.
    public var indirectBytes: UInt64
    /// Seconds since tracking started of the newest write seen to the blocks' pages, and how many
    /// blocks were not written for the stale threshold (nil without a scan).
    public var lastWrittenSeconds: Double?
    public var staleBlocks: Int?
    /// For leaks: the blocks themselves, oldest first (at most `BlockDetail.limit` per group).
    public var details: [BlockDetail]
}

/// One leaked block: where it is, how big, when it was allocated and last written.
public struct BlockDetail: Sendable, Codable, Equatable {
    public static let limit = 64
    public var address: UInt64
    public var size: UInt64
    public var allocatedSeconds: Double
    public var lastWrittenSeconds: Double?

    public init(address: UInt64, size: UInt64, allocatedSeconds: Double, lastWrittenSeconds: Double?) {
        self.address = address
        self.size = size
        self.allocatedSeconds = allocatedSeconds
        self.lastWrittenSeconds = lastWrittenSeconds
    }
}

/// A finding with its stack.
public struct FindingReport: Sendable, Codable, Equatable {
    public var kind: LedgerFinding.Kind
    public var address: UInt64
    public var releasedBy: AllocatorFunction
    public var allocatedBy: AllocatorFunction?
    public var thread: Int32
    public var seconds: Double
    public var frames: [ReportFrame]
    /// For implausible allocation results: the size the allocator was asked for.
    public var size: UInt64? = nil
}

/// One symbolized stack frame.
public struct ReportFrame: Sendable, Codable, Equatable {
    public var pc: UInt64
    public var function: String?
    public var offset: UInt64?
    public var file: String?
    public var line: Int?
    /// Guest path of the ELF file the address lies in.
    public var module: String?

    public init(pc: UInt64, function: String? = nil, offset: UInt64? = nil, file: String? = nil, line: Int? = nil,
                module: String? = nil) {
        self.pc = pc
        self.function = function
        self.offset = offset
        self.file = file
        self.line = line
        self.module = module
    }
}
