import LeakAnalysis
import Reachability

/// Outstanding and leaked (definitely or indirectly lost) blocks and bytes.
public struct SiteTotals: Sendable, Codable, Equatable {
    public var blocks = 0
    public var bytes: UInt64 = 0
    public var leakedBlocks = 0
    public var leakedBytes: UInt64 = 0

    public init(blocks: Int = 0, bytes: UInt64 = 0, leakedBlocks: Int = 0, leakedBytes: UInt64 = 0) {
        self.blocks = blocks
        self.bytes = bytes
        self.leakedBlocks = leakedBlocks
        self.leakedBytes = leakedBytes
    }

    public static func + (a: Self, b: Self) -> Self {
        SiteTotals(blocks: a.blocks &+ b.blocks, bytes: a.bytes.addingSaturated(b.bytes),
                   leakedBlocks: a.leakedBlocks &+ b.leakedBlocks, leakedBytes: a.leakedBytes.addingSaturated(b.leakedBytes))
    }
}

/// A report cut into the journal's rows: per process and, within it, per allocation site.
struct SampleRows {
    struct Process {
        /// pid, command and which of the report's processes with that pid and command it is.
        var key: String
        var report: ProcessReport
        var totals = SiteTotals()
        var sites: [String: Site] = [:]
    }

    struct Site {
        var function: String
        var frames: [ReportFrame]
        var totals = SiteTotals()
    }

    var processes: [Process] = []
    /// The whole report's totals.
    var total = SiteTotals()

    init(_ report: LeakReport) {
        var seen: [String: Int] = [:]
        for process in report.processes {
            let base = "\(process.pid.map(String.init) ?? "?")|\(process.command ?? "?")"
            let ordinal = seen[base, default: 0]
            seen[base] = ordinal + 1
            var row = Process(key: "\(base)|\(ordinal)", report: process)
            for group in process.groups {
                let key = SiteKey.of(function: group.function.rawValue, frames: group.frames)
                let lost = group.reachability == .directLeak || group.reachability == .indirectLeak
                let totals = SiteTotals(blocks: group.blocks, bytes: group.bytes,
                                        leakedBlocks: lost ? group.blocks : 0, leakedBytes: lost ? group.bytes : 0)
                row.sites[key, default: Site(function: group.function.rawValue, frames: group.frames)].totals += totals
                row.totals += totals
            }
            total += row.totals
            processes.append(row)
        }
    }
}

extension SiteTotals {
    static func += (a: inout Self, b: Self) { a = a + b }
}
