import Foundation
import ReportFormats
import Testing

/// Render time and size per format for the lv-leak-tree fixture (printed; each format must
/// render it in well under a second even in a debug build).
@Suite struct ReportRenderTimingTests {
    @Test func everyFormatRendersTheFixtureQuickly() throws {
        let report = try ReportFixtures.leakTree()
        var lines: [String] = []
        for format in ReportFormat.allCases {
            var best = Double.infinity
            var size = 0
            for _ in 0..<10 {
                let start = DispatchTime.now().uptimeNanoseconds
                size = try ReportRenderer.render(report, as: format).count
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            lines.append("\(format.rawValue) \(String(format: "%.2f", best)) ms \(size) B")
            #expect(best < 1000, "\(format.rawValue) took \(best) ms")
        }
        print("[render times, best of 10] " + lines.joined(separator: "; "))
    }
}
