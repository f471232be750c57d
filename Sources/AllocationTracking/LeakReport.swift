/// What LeakVisor reports about the guest's heaps: per process, outstanding allocations grouped by
/// allocation stack (largest first) and findings. The JSON form of `--report` is this, encoded.
public struct LeakReport: Sendable, Codable, Equatable {
    public var tool = "leakvisor"
    public var formatVersion = 1
    /// Seconds since tracking started when the report was made.
    public var seconds: Double
    public var processes: [ProcessReport]
    public var summary: Summary

    public struct Summary: Sendable, Codable, Equatable {
        public var outstandingBlocks: Int
        public var outstandingBytes: UInt64
        public var allocationSites: Int
        public var processes: Int
        public var findings: Int

        public init(outstandingBlocks: Int, outstandingBytes: UInt64, allocationSites: Int, processes: Int, findings: Int) {
            self.outstandingBlocks = outstandingBlocks
            self.outstandingBytes = outstandingBytes
            self.allocationSites = allocationSites
            self.processes = processes
            self.findings = findings
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
