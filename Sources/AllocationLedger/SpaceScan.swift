import Foundation
import Reachability

/// What one reachability scan found in one address space: a verdict per live block (by address)
/// and what the scan cost.
public struct SpaceScan: Sendable, Codable {
    /// Tracker time of the scan (nanoseconds since tracking started).
    public var time: UInt64
    public var verdicts: [UInt64: BlockVerdict]
    public var figures: ScanFigures
    /// Why the result may be incomplete (threads without registers, unreadable pages); empty when exact.
    public var notes: [String]
    /// Whether the marking finished. An incomplete scan gives verdicts only to the blocks it proved
    /// reachable; the others are not classified (never reported as leaks from it).
    public var complete: Bool
    /// `verdicts` as changes against the scanner's previous scan of the space, when the scanner
    /// knows them: the ledger's bookkeeping then costs what changed. Not saved.
    public var verdictChanges: VerdictChanges?

    public init(time: UInt64, verdicts: [UInt64: BlockVerdict], figures: ScanFigures, notes: [String], complete: Bool = true,
                verdictChanges: VerdictChanges? = nil) {
        self.time = time
        self.verdicts = verdicts
        self.figures = figures
        self.notes = notes
        self.complete = complete
        self.verdictChanges = verdictChanges
    }

    enum CodingKeys: String, CodingKey {
        case time, verdicts, figures, notes, complete
    }
}

extension SpaceScan {
    /// The verdict of the block at `address`, unless the block is newer than the scan (allocated
    /// after it, possibly where a block it judged was freed): such a block has none yet.
    public func verdict(of address: UInt64, _ block: LiveBlock) -> BlockVerdict? {
        block.time <= time ? verdicts[address] : nil
    }
}

/// A block's class, and for staleness when its memory was last written.
public struct BlockVerdict: Sendable, Equatable, Codable {
    public var reachability: ReachabilityClass
    /// For an indirect leak: the address of the direct leak that leads to it.
    public var leader: UInt64?
    /// For a direct leak: bytes of the indirect leaks it leads to.
    public var indirectBytes: UInt64
    /// Tracker time of the last write seen to any page the block lies on (at least its allocation
    /// time); pages shared with other blocks make this an upper bound on the block's own last write.
    public var lastWritten: UInt64
    /// For a still reachable block that only an interior pointer matching a leak-check heuristic
    /// reaches (valgrind's "reachable via heuristic"): that heuristic.
    public var viaHeuristic: LeakCheckHeuristic?

    public init(reachability: ReachabilityClass, leader: UInt64?, indirectBytes: UInt64, lastWritten: UInt64,
                viaHeuristic: LeakCheckHeuristic? = nil) {
        self.reachability = reachability
        self.leader = leader
        self.indirectBytes = indirectBytes
        self.lastWritten = lastWritten
        self.viaHeuristic = viaHeuristic
    }
}

/// The cost of one scan.
public struct ScanFigures: Sendable, Codable, Equatable {
    /// `full` (nothing cached), `incremental` (dirty pages re-read) or `at exit`.
    public var kind: String
    public var threads: Int
    public var rootBytes: UInt64
    /// Bytes of roots and reached blocks the marking went through.
    public var bytesScanned: UInt64
    /// Guest pages read from memory, and pages whose cached words were still valid.
    public var pagesRead: Int
    public var pagesReused: Int
    /// Pages reported written since the previous scan (from the dirty log).
    public var pagesDirtied: Int
    /// Time the guest was held for the exact part, and the whole scan's time.
    public var pauseSeconds: Double
    public var totalSeconds: Double
    /// Blocks whose references were resolved from memory, and blocks whose references kept from an
    /// earlier scan were still valid (nil in scans recorded before they were counted).
    public var blocksResolved: Int?
    public var blocksReused: Int?
    /// Where the scan's time went (nil in scans recorded before it was measured).
    public var phases: ScanPhases?
    /// Whether the marking ran after the guest resumed, on what the pause took (nil: it ran in the
    /// pause, or the scan was recorded before this was said).
    public var markedAfterPause: Bool?
    /// Whether a rescan took the last marking's result, its inputs unchanged (nil: no rescan after
    /// the pause, or recorded before this was said).
    public var markingKept: Bool?

    public init(kind: String, threads: Int, rootBytes: UInt64, bytesScanned: UInt64, pagesRead: Int, pagesReused: Int,
                pagesDirtied: Int, pauseSeconds: Double, totalSeconds: Double) {
        self.kind = kind
        self.threads = threads
        self.rootBytes = rootBytes
        self.bytesScanned = bytesScanned
        self.pagesRead = pagesRead
        self.pagesReused = pagesReused
        self.pagesDirtied = pagesDirtied
        self.pauseSeconds = pauseSeconds
        self.totalSeconds = totalSeconds
    }
}

/// One allocation site's referenced blocks at one scan: what growth detection compares.
public struct SiteSample: Sendable, Equatable, Codable {
    public var time: UInt64
    public var blocks: Int
    public var bytes: UInt64
    /// Blocks not written for at least the stale threshold at that scan.
    public var staleBlocks: Int
}

/// Seconds each step of a scan took: the block index (and the kept references carried over to
/// it), the roots, the marking (reading and resolving what was not kept included), the verdicts.
public struct ScanPhases: Sendable, Codable, Equatable, CustomStringConvertible {
    public var index: Double
    public var roots: Double
    public var marking: Double
    public var verdicts: Double

    public init(index: Double, roots: Double, marking: Double, verdicts: Double) {
        self.index = index
        self.roots = roots
        self.marking = marking
        self.verdicts = verdicts
    }

    public var description: String {
        String(format: "index %.1f ms, roots %.1f ms, marking %.1f ms, verdicts %.1f ms",
               index * 1000, roots * 1000, marking * 1000, verdicts * 1000)
    }
}
