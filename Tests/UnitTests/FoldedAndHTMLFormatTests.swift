import Foundation
import LeakAnalysis
import ReportFormats
import Testing

/// Folded stacks and the HTML page from real reports.
@Suite struct FoldedAndHTMLFormatTests {
    @Test func foldedHasALinePerGroupRootFirst() throws {
        let report = try ReportFixtures.leakTree()
        let text = String(decoding: try ReportRenderer.render(report, as: .folded), as: UTF8.self)
        let lines = text.split(separator: "\n")
        #expect(lines.count == report.processes[0].groups.count)
        var total: UInt64 = 0
        for (line, group) in zip(lines, report.processes[0].groups) {
            let space = try #require(line.lastIndex(of: " "))
            total += try #require(UInt64(line[line.index(after: space)...]))
            let frames = line[..<space].split(separator: ";")
            #expect(frames.first == "lv-leak-tree (pid \(report.processes[0].pid!))")
            #expect(frames.last.map(String.init) == group.frames.first?.function)   // the allocator is the leaf
        }
        #expect(total == report.processes[0].outstandingBytes)
        #expect(lines.contains { $0.contains(";definitely lost;") && $0.contains(";main;") })
    }

    @Test func foldedNamesNeverBreakTheFormat() throws {
        var report = try ReportFixtures.unsymbolized()
        report.processes[0].groups[0].frames[0].function = "a;b\nc"
        let text = String(decoding: try ReportRenderer.render(report, as: .folded), as: UTF8.self)
        #expect(text.split(separator: "\n").count == report.processes[0].groups.count)
        #expect(text.contains("a:b c"))
        #expect(text.contains("0x"))
        #expect(try ReportRenderer.render(try ReportFixtures.empty(), as: .folded).isEmpty)
    }

    @Test func htmlIsSelfContainedWithSummaryGroupsAndPlots() throws {
        let report = try ReportFixtures.leakTree()
        let series = [OutstandingSeries(subject: .process, name: "lv-leak-tree (pid 95)",
                                        points: [.init(seconds: 0, bytes: 0), .init(seconds: 1, bytes: 1000), .init(seconds: 2, bytes: 2395)]),
                      OutstandingSeries(subject: .site, name: "lv_tree_node", points: [.init(seconds: 0.5, bytes: 24)])]
        let html = String(decoding: try ReportRenderer.render(report, as: .html, options: ReportRenderOptions(series: series)),
                          as: UTF8.self)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("<td class=\"num\">\(report.summary.outstandingBytes)</td>"))
        #expect(html.contains("<td class=\"num\">\(report.summary.classes.definitelyLost.bytes)</td>"))
        #expect(html.components(separatedBy: "<details class=\"group").count - 1 == report.processes[0].groups.count)
        #expect(html.components(separatedBy: "<svg").count - 1 == 2)
        #expect(html.contains("<polyline"))
        #expect(html.contains("lv-leak-tree.c:"))
        // Nothing fetched: no external URLs but the SVG namespace.
        let urls = html.components(separatedBy: "http").dropFirst().map { String($0.prefix(30)) }
        #expect(urls.allSatisfy { $0.hasPrefix("://www.w3.org/2000/svg") })
        #expect(!html.contains("<script") && !html.contains("<link"))
        // Without series: no plots.
        let plain = String(decoding: try ReportRenderer.render(report, as: .html), as: UTF8.self)
        #expect(!plain.contains("<svg"))
    }

    @Test func htmlEscapesTheGuestsNames() throws {
        var report = try ReportFixtures.leakTree()
        report.processes[0].command = "<script>alert(1)</script>"
        report.processes[0].groups[0].frames[1].function = "f<img src=x>"
        let html = String(decoding: try ReportRenderer.render(report, as: .html), as: UTF8.self)
        #expect(!html.contains("<script>") && !html.contains("<img"))
        #expect(html.contains("&lt;script&gt;"))
        for edge in [try ReportFixtures.empty(), try ReportFixtures.huge(), try ReportFixtures.unsymbolized()] {
            #expect(!(try ReportRenderer.render(edge, as: .html)).isEmpty)
        }
    }

    @Test func textIsTheMonitorsLayoutAndJSONRoundTrips() throws {
        let report = try ReportFixtures.leakTree()
        let text = String(decoding: try ReportRenderer.render(report, as: .text), as: UTF8.self)
        #expect(text == LeakReportText.render(report, showReachable: true))
        let decoded = try JSONDecoder().decode(LeakReport.self, from: try ReportRenderer.render(report, as: .json))
        #expect(decoded == report)
    }

    @Test(.enabled(if: JSONSchemaValidator.available, "needs python3-jsonschema (scripts/setup.sh)"))
    func jsonValidatesAgainstTheReportSchema() throws {
        let schema = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/schemas/leak-report-v2.schema.json").path
        var suppressed = try ReportFixtures.leakTree()
        suppressed.suppressed = [SuppressedCount(name: "x", file: "/a.supp", groups: 1, blocks: 2, bytes: 3)]
        for report in [try ReportFixtures.leakTree(), try ReportFixtures.leakCxx(), try ReportFixtures.empty(),
                       try ReportFixtures.unsymbolized(), suppressed] {
            #expect(try JSONSchemaValidator.errors(try ReportRenderer.render(report, as: .json), schema: schema) == [])
        }
        // The schema is strict: an unknown field is refused.
        var object = try #require(try JSONSerialization.jsonObject(with: try ReportRenderer.render(try ReportFixtures.leakTree(), as: .json)) as? [String: Any])
        object["surprise"] = 1
        #expect(try !JSONSchemaValidator.errors(try JSONSerialization.data(withJSONObject: object), schema: schema).isEmpty)
    }
}

/// Values a report file may hold that no run writes: nothing traps.
@Suite struct HostileReportValuesTests {
    @Test func aSeriesAtTheLargestByteCountPlots() throws {
        let series = [OutstandingSeries(subject: .site, name: "s", points: [.init(seconds: -1e308, bytes: .max),
                                                                            .init(seconds: 1e308, bytes: 0),
                                                                            .init(seconds: .nan, bytes: 1)])]
        let html = String(decoding: try ReportRenderer.render(try ReportFixtures.leakTree(), as: .html,
                                                              options: ReportRenderOptions(series: series)), as: UTF8.self)
        #expect(html.contains("≥\(UInt64.max)"))
    }

    @Test func negativeAndExtremeCountsRenderInEveryFormat() throws {
        var report = try ReportFixtures.huge()
        report.processes[0].allocations = Int.min
        report.processes[0].outstandingBlocks = -5
        report.processes[0].groups[2].blocks = Int.min
        report.processes[0].groups[3].frames[0].line = Int.min
        for format in ReportFormat.allCases {
            #expect(!(try ReportRenderer.render(report, as: format)).isEmpty || format == .folded)
        }
    }
}
