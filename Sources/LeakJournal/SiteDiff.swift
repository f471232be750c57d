import LeakAnalysis

/// How one program's allocation site changed between two samples (valgrind's "leak_check
/// increased"): its totals before and after, and the signed differences.
public struct SiteChange: Sendable, Codable, Equatable {
    public var command: String
    public var siteKey: String
    public var function: String
    public var frames: [ReportFrame]
    /// nil: the site had no outstanding block at that point.
    public var before: SiteTotals?
    public var after: SiteTotals?
    public var blocksDelta: Int
    public var bytesDelta: Int64
    public var leakedBlocksDelta: Int
    public var leakedBytesDelta: Int64
    /// New since the earlier point (it had no block then).
    public var isNew: Bool { before == nil }
    /// Gone at the later point (all its blocks released).
    public var isGone: Bool { after == nil }
}

/// What is new and what grew between two samples, per program and site.
public struct SiteDiff: Sendable, Codable, Equatable {
    public var tool = "leakvisor"
    public var kind = "journal-diff"
    public var from: JournalSample
    public var to: JournalSample
    /// Sites that changed, largest growth first, then the shrinking ones.
    public var sites: [SiteChange]
    public var summary: Summary

    public struct Summary: Sendable, Codable, Equatable {
        public var newSites = 0
        public var grownSites = 0
        public var shrunkSites = 0
        public var goneSites = 0
        public var blocksDelta = 0
        public var bytesDelta: Int64 = 0
        public var leakedBlocksDelta = 0
        public var leakedBytesDelta: Int64 = 0
    }

    /// Compares the totals of two samples; unchanged sites are left out. `describe` gives the
    /// function and frames of a site key.
    public static func compare(from: JournalSample, _ before: [SiteOfProgram: SiteTotals], to: JournalSample,
                               _ after: [SiteOfProgram: SiteTotals], describe: (String) -> SiteDescription?) -> SiteDiff {
        var changes: [SiteChange] = []
        var summary = Summary()
        for key in Set(before.keys).union(after.keys) {
            let a = before[key], b = after[key]
            guard a != b else { continue }
            let old = a ?? SiteTotals(), new = b ?? SiteTotals()
            let description = describe(key.siteKey)
            let change = SiteChange(command: key.command, siteKey: key.siteKey,
                                    function: description?.function ?? String(key.siteKey.prefix { $0 != ";" }),
                                    frames: description?.frames ?? [], before: a, after: b,
                                    blocksDelta: new.blocks &- old.blocks, bytesDelta: signedDelta(new.bytes, old.bytes),
                                    leakedBlocksDelta: new.leakedBlocks &- old.leakedBlocks,
                                    leakedBytesDelta: signedDelta(new.leakedBytes, old.leakedBytes))
            if a == nil { summary.newSites += 1 } else if b == nil { summary.goneSites += 1 }
            if change.bytesDelta > 0 || (change.bytesDelta == 0 && change.blocksDelta > 0) { summary.grownSites += 1 }
            if change.bytesDelta < 0 { summary.shrunkSites += 1 }
            summary.blocksDelta &+= change.blocksDelta
            summary.bytesDelta = summary.bytesDelta.addingReportingOverflow(change.bytesDelta).partialValue
            summary.leakedBlocksDelta &+= change.leakedBlocksDelta
            summary.leakedBytesDelta = summary.leakedBytesDelta.addingReportingOverflow(change.leakedBytesDelta).partialValue
            changes.append(change)
        }
        changes.sort { ($0.bytesDelta, $0.blocksDelta, $1.command, $1.siteKey) > ($1.bytesDelta, $1.blocksDelta, $0.command, $0.siteKey) }
        return SiteDiff(from: from, to: to, sites: changes, summary: summary)
    }

    /// `new − old` as a signed count, clamped to Int64's range.
    static func signedDelta(_ new: UInt64, _ old: UInt64) -> Int64 {
        new >= old ? Int64(clamping: new - old) : -Int64(clamping: old - new)
    }
}
