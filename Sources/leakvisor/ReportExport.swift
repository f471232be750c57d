import Foundation
import LeakAnalysis
import LeakSuppressions
import ReportFormats

/// What `leakvisor report` does with a report once it has one: suppressions, then the chosen
/// format (or suppression entries) to a file, atomically, or to stdout.
enum ReportExport {
    struct Refusal: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads a report file written by `run --report` (or `report -o`).
    static func read(_ path: String) throws -> LeakReport {
        let data = try Data(contentsOf: URL(fileURLWithPath: HostPathArgument.absolute(path)))
        do {
            return try JSONDecoder().decode(LeakReport.self, from: data)
        } catch {
            throw Refusal(description: "\(path) is not a LeakVisor report: \(error)")
        }
    }

    /// `series`: the html plots when --series does not name a file (a journal's).
    static func write(_ report: LeakReport, options: ReportExportOptions, format: ReportFormat, output: String?,
                      series: [OutstandingSeries] = []) throws {
        var report = report
        if !options.suppressions.isEmpty {
            report = try SuppressionList.load(options.suppressions.map(HostPathArgument.absolute)).apply(to: report)
        }
        let data: Data
        if options.genSuppressions {
            data = Data(SuppressionWriter.valgrindEntries(for: report).utf8)
        } else {
            var renderOptions = ReportRenderOptions(sourceRoot: options.sourceRoot.map(HostPathArgument.absolute))
            renderOptions.series = series
            if let series = options.series {
                let data = try Data(contentsOf: URL(fileURLWithPath: HostPathArgument.absolute(series)))
                renderOptions.series = try JSONDecoder().decode([OutstandingSeries].self, from: data)
            }
            data = try ReportRenderer.render(report, as: format, options: renderOptions)
        }
        if let output {
            try ReportFile.write(data, to: HostPathArgument.absolute(output))
            return
        }
        let terminal = isatty(1) == 1
        if terminal && format.isBinary && !options.genSuppressions {
            throw Refusal(description: "\(format.rawValue) is binary: not written to a terminal (use -o FILE or a pipe)")
        }
        if terminal, let text = String(data: data, encoding: .utf8) {
            FileHandle.standardOutput.write(Data(MonitorOutput.printable(text).utf8))
        } else {
            FileHandle.standardOutput.write(data)
        }
    }
}
