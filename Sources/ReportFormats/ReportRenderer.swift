import Foundation
import LeakAnalysis

/// Renders a `LeakReport` in any `ReportFormat`.
public enum ReportRenderer {
    public static func render(_ report: LeakReport, as format: ReportFormat,
                              options: ReportRenderOptions = ReportRenderOptions()) throws -> Data {
        switch format {
        case .text: Data(LeakReportText.render(report, maxFrames: options.maxFrames, showReachable: options.showReachable).utf8)
        case .json: try ReportJSON.encode(report)
        case .valgrindXML: Data(ValgrindXML.render(report).utf8)
        case .sarif: try SARIFLog.render(report, sourceRoot: options.sourceRoot)
        case .pprof: try PprofProfile.render(report)
        case .folded: Data(FoldedStacks.render(report).utf8)
        case .html: Data(HTMLReport.render(report, series: options.series, maxFrames: options.maxFrames).utf8)
        }
    }
}
