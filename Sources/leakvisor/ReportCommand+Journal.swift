import Foundation
import LeakAnalysis
import LeakJournal

/// `leakvisor report --journal`: the report, a diff or growth rates from a journal file alone.
extension ReportCommand {
    func runFromJournal(_ path: String) throws {
        let reader = try JournalReader(path: HostPathArgument.absolute(path))
        let output: String
        let json = export.format == .json || (export.format == nil && common.json)
        if let (from, to) = diffPoints {
            let diff = try SiteDiff.build(from: reader, from: from, to: to)
            output = json ? try Self.json(diff) : JournalText.render(diff)
        } else {
            let document = try JournalReport.build(from: reader, atOrBefore: at?.seconds)
            // The export formats, suppressions and their entries: the sample's report, as for --input
            // (html with the journal's series of outstanding bytes).
            let format = export.format ?? (json ? .json : .text)
            if (format != .text && format != .json) || !export.suppressions.isEmpty || export.genSuppressions {
                let series = format == .html ? try JournalSeries.outstanding(reader, through: document.journal.sample) : []
                return try ReportExport.write(document.report, options: export, format: format, output: self.output, series: series)
            }
            output = json ? try Self.json(document) : JournalText.render(document, showReachable: showReachable)
        }
        if let file = self.output {
            try ReportFile.write(Data(output.utf8), to: HostPathArgument.absolute(file))
        } else {
            print(MonitorOutput.printable(output), terminator: "")
        }
    }

    /// The two points of a diff: --diff A B, or --since A [--until B] (B nil: the latest sample).
    var diffPoints: (Double, Double?)? {
        if diff.count == 2 { return (diff[0].seconds, diff[1].seconds) }
        if let since { return (since.seconds, until?.seconds) }
        return nil
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }
}
