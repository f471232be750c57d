import Foundation
import LeakAnalysis

/// The text forms of a journal's report and diff: the report in today's LeakSanitizer layout,
/// followed by the journal's sections.
public enum JournalText {
    public static func render(_ document: JournalReport, showReachable: Bool = false, maxFrames: Int = 16) -> String {
        let context = document.journal
        var out = "leakvisor: journal sample \(context.sample.id) (\(context.sample.reason)\(context.sample.final && context.sample.reason != "final" ? ", final" : ""))"
            + " at \(seconds(context.sample.seconds)) of \(context.samples.count) kept; run: \(shellWords(context.identity.commandLine))\n\n"
        out += LeakReportText.render(document.report, maxFrames: maxFrames, showReachable: showReachable)
        out += growth(context.growth, criteria: context.growthCriteria, maxFrames: maxFrames)
        return out
    }

    /// The growth section: sites ranked by their rate, and the criterion that admitted them.
    public static func growth(_ rates: [GrowthRate], criteria: GrowthCriteria, maxFrames: Int = 16) -> String {
        var out = "\nGROWTH: \(rates.count) site(s) whose outstanding bytes grow steadily (least-squares line over at least"
            + " \(criteria.minimumSamples) samples, R² ≥ \(criteria.minimumFit), at least \(Int(criteria.minimumNonShrinking * 100))%"
            + " of steps not shrinking)\n"
        for rate in rates {
            out += "\nGrowing at \(Int(rate.bytesPerHour.rounded())) byte(s)/hour: \(rate.firstBytes) -> \(rate.lastBytes) byte(s)"
                + " over \(rate.samples) samples (\(seconds(rate.firstSeconds)) to \(seconds(rate.lastSeconds)), R² "
                + String(format: "%.2f", rate.fit) + ")"
                + (rate.leakedBytes > 0 ? ", \(rate.leakedBytes) byte(s) of it lost" : ", none of it lost yet")
                + " in \(rate.command), allocated by \(rate.function) from:\n"
            out += LeakReportText.frames(rate.frames, maxFrames)
        }
        return out
    }

    /// The diff: one paragraph per changed site, then a summary line.
    public static func render(_ diff: SiteDiff, maxFrames: Int = 16) -> String {
        var out = "leakvisor: journal diff from sample \(diff.from.id) at \(seconds(diff.from.seconds))"
            + " to sample \(diff.to.id) at \(seconds(diff.to.seconds))\n"
        for change in diff.sites {
            let before = change.before ?? SiteTotals(), after = change.after ?? SiteTotals()
            let tag = change.isNew ? "NEW: " : change.isGone ? "GONE: " : ""
            out += "\n\(tag)\(signed(change.bytesDelta)) byte(s) (\(signed(Int64(change.blocksDelta))) block(s)):"
                + " \(before.bytes) -> \(after.bytes) byte(s) in \(before.blocks) -> \(after.blocks) block(s)"
                + (change.leakedBytesDelta != 0 || after.leakedBytes > 0
                   ? "; lost \(signed(change.leakedBytesDelta)) byte(s) (\(signed(Int64(change.leakedBlocksDelta))) block(s)),"
                     + " now \(after.leakedBytes) byte(s) in \(after.leakedBlocks) block(s)" : "")
                + " in \(change.command), allocated by \(change.function) from:\n"
            out += LeakReportText.frames(change.frames, maxFrames)
        }
        let s = diff.summary
        out += "\nDIFF SUMMARY: \(signed(s.bytesDelta)) byte(s) in \(signed(Int64(s.blocksDelta))) block(s) outstanding;"
            + " lost \(signed(s.leakedBytesDelta)) byte(s) in \(signed(Int64(s.leakedBlocksDelta))) block(s);"
            + " \(s.newSites) new, \(s.grownSites) grown, \(s.shrunkSites) shrunk, \(s.goneSites) gone site(s).\n"
        return out
    }

    /// A command line as a shell would take it back: words with spaces or quotes single-quoted.
    static func shellWords(_ words: [String]) -> String {
        words.map { word in
            word.isEmpty || word.contains(where: { " \t\n'\"\\$&;|<>()*?`".contains($0) })
                ? "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" : word
        }.joined(separator: " ")
    }

    static func signed(_ value: Int64) -> String { value >= 0 ? "+\(value)" : "\(value)" }

    static func seconds(_ value: Double) -> String { String(format: "%.1f s", value) }
}
