import Foundation
import Testing

/// Live metrics end to end: a tracked guest leaking in a loop with periodic scans, scraped while
/// it runs by curl and checked by `promtool check metrics` (Debian's prometheus), and once as
/// OpenMetrics by python3-prometheus-client's strict parser; its outstanding
/// bytes grow between scrapes, and once the program exited the scrape says what the final report says.
@Suite(.enabled(if: LeakVisorProcess.executable != nil && LeakVisorProcess.imageBuilt
                    && FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")
                    && FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool"),
                "needs .build/debug/leakvisor, the default guest image, curl and promtool (scripts/setup.sh)"))
struct MetricsTests {
    /// One scrape: curl's output, checked by promtool, as samples by `name{labels}`, and how long
    /// it took by curl's own clock (connect to last byte; spawning curl is not counted).
    struct Scrape {
        var text: String
        var samples: [String: Double] = [:]
        var seconds: Double

        /// `openMetrics`: ask as Prometheus does (OpenMetrics first) and check the answer with the
        /// strict OpenMetrics parser of Debian's python3-prometheus-client instead of promtool.
        init(_ url: String, openMetrics: Bool = false) throws {
            let accept = openMetrics ? ["-H", "Accept: " + Self.prometheusAccept] : []
            let curl = try Self.run("/usr/bin/curl", ["-sS", "--fail", "--max-time", "10", "-w", "%{stderr}%{time_total} %{content_type}"]
                                    + accept + [url])
            let written = curl.error.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ", maxSplits: 1)
            seconds = written.first.flatMap { Double($0) } ?? .nan
            text = String(decoding: curl.output, as: UTF8.self)
            #expect(curl.status == 0 && !seconds.isNaN, "curl: \(curl.error)")
            let type = written.count > 1 ? String(written[1]) : ""
            if openMetrics {
                #expect(type.hasPrefix("application/openmetrics-text; version=1.0.0"), "content type \(type)")
                let check = try Self.run("/usr/bin/python3", ["-c", Self.openMetricsCheck], input: curl.output)
                #expect(check.status == 0, "OpenMetrics parser: \(String(decoding: check.output, as: UTF8.self)) \(check.error)")
            } else {
                #expect(type.hasPrefix("text/plain; version=0.0.4"), "content type \(type)")
                let check = try Self.run("/usr/bin/promtool", ["check", "metrics"], input: curl.output)
                #expect(check.status == 0, "promtool: \(String(decoding: check.output, as: UTF8.self)) \(check.error)")
            }
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
                samples[String(line[..<space])] = value
            }
        }

        /// The Accept header Prometheus 2.x sends when it scrapes.
        static let prometheusAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
            + "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        /// Parses stdin with prometheus_client's OpenMetrics parser (it rejects a missing `# EOF`,
        /// counters named wrongly, blank lines...); prints the families and samples it read.
        static let openMetricsCheck = """
            import sys
            from prometheus_client.openmetrics.parser import text_string_to_metric_families
            families = list(text_string_to_metric_families(sys.stdin.read()))
            print(len(families), "families", sum(len(f.samples) for f in families), "samples")
            """

        /// The series of lv-leak-loop's process (one, by its label), as (labels, bytes).
        func loop(_ metric: String = "leakvisor_process_outstanding_bytes") -> (String, Double)? {
            samples.first { $0.key.hasPrefix(metric + "{") && $0.key.contains("command=\"lv-leak-loop\"") }.map { ($0.key, $0.value) }
        }

        static func run(_ executable: String, _ arguments: [String], input: Data? = nil) throws -> (status: Int32, output: Data, error: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            let output = Pipe(), error = Pipe(), inputPipe = Pipe()
            process.standardOutput = output
            process.standardError = error
            process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe
            try process.run()
            if let input {
                inputPipe.fileHandleForWriting.write(input)
                try inputPipe.fileHandleForWriting.close()
            }
            let data = output.fileHandleForReading.readDataToEndOfFile()
            let errors = error.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, data, String(decoding: errors, as: UTF8.self))
        }
    }

    @Test func aScraperSeesTheLeakGrowAndTheFinalFiguresMatchTheReport() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lv-metrics-it-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let reportPath = directory.appendingPathComponent("report.json").path

        // lv-leak-loop: one 32-byte block leaked per 100 ms iteration, 80 iterations; then the shell waits.
        let script = "lv-leak-loop 80 100; echo LV-LOOPED; read answer; echo LV-DONE $answer"
        let guest = try LiveGuest(["run", "--track", "user", "--scan-every", "1s", "--metrics-listen", "127.0.0.1:0", "--no-journal",
                                   "--report", reportPath, "--timeout", "900", "--interactive", "--", "sh", "-c", script])
        let started = guest.waitFor("lv-prog lv-leak-loop iteration 20", timeout: 600)
        #expect(started, "the loop never ran: \(guest.console.suffix(2000)) \(guest.monitorOutput.suffix(2000))")
        guard started else { _ = guest.finish(timeout: 5); return }
        let line = try #require(guest.monitorOutput.split(separator: "\n").first { $0.hasPrefix("leakvisor: metrics: http://127.0.0.1:") },
                                "the URL is said at start: \(guest.monitorOutput.suffix(2000))")
        let url = String(line.dropFirst("leakvisor: metrics: ".count))
        #expect(url.hasSuffix("/metrics") && !url.contains(":0/"), "the kernel's port, not 0: \(url)")

        // Two scrapes while it leaks: its outstanding bytes grow.
        let first = try Scrape(url)
        #expect(guest.waitFor("lv-prog lv-leak-loop iteration 50", timeout: 300))
        let second = try Scrape(url)
        // As Prometheus itself scrapes: OpenMetrics, with the same series.
        let open = try Scrape(url, openMetrics: true)
        #expect(open.text.hasSuffix("# EOF\n") && open.text.contains("# TYPE leakvisor_scans counter\n"), "\(open.text.suffix(2000))")
        #expect(open.loop() != nil && (open.samples["leakvisor_scans_total"] ?? 0) >= 1, "\(open.text.prefix(3000))")
        let (labels, before) = try #require(first.loop(), "lv-leak-loop's series: \(first.text.prefix(3000))")
        let after = try #require(second.loop()?.1)
        #expect(labels.contains("state=\"live\""))
        #expect(after - before >= 32 * 20, "at least 20 more 32-byte blocks between the scrapes: \(before) -> \(after)")
        #expect((second.samples["leakvisor_allocator_events_total{event=\"entry\"}"] ?? 0) > (first.samples["leakvisor_allocator_events_total{event=\"entry\"}"] ?? 0))
        #expect((second.samples["leakvisor_scans_total"] ?? 0) >= 1, "periodic scans are counted")
        #expect((second.samples["leakvisor_scan_pause_seconds_count"] ?? 0) == second.samples["leakvisor_scans_total"])
        #expect((second.samples["leakvisor_tracked_processes"] ?? 0) >= 1)
        #expect((second.samples["leakvisor_outstanding_bytes{class=\"definitely_lost\"}"] ?? 0) > 0, "scans found the loop's leaks")

        // Scrape latency and the cost to the guest: a burst of scrapes while it runs.
        var latencies: [Double] = []
        for _ in 0..<20 { latencies.append(try Scrape(url).seconds) }
        latencies.sort()
        print("[metrics] scrape latency (curl's time_total) median \(String(format: "%.1f", latencies[10] * 1000)) ms,"
              + " max \(String(format: "%.1f", latencies.last! * 1000)) ms; collection "
              + "\(String(format: "%.2f", (second.samples["leakvisor_metrics_collection_seconds"] ?? 0) * 1000)) ms; scans "
              + "\(Int(second.samples["leakvisor_scans_total"] ?? 0)), last pause "
              + "\(String(format: "%.2f", (second.samples["leakvisor_scan_last_pause_seconds"] ?? 0) * 1000)) ms")

        // After the loop exited (and was scanned as it exited), the figures stand still: a scrape
        // then says what the final report says.
        let looped = guest.waitFor("LV-LOOPED", timeout: 300)
        #expect(looped)
        sleep(3)
        let settled = try Scrape(url)
        guest.type("bye\n")
        #expect(guest.waitFor("LV-DONE bye", timeout: 120))
        let result = guest.finish(timeout: 120)
        #expect(result.status == 0, "\(result.stderr.suffix(2000))")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportPath))) as? [String: Any])
        let processes = try #require(report["processes"] as? [[String: Any]])
        let loop = try #require(processes.first { $0["command"] as? String == "lv-leak-loop" })
        let (settledLabels, settledBytes) = try #require(settled.loop(), "\(settled.text.prefix(3000))")
        #expect(settledLabels.contains("state=\"exited\"") && settledLabels.contains("pid=\"\(loop["pid"] as? Int ?? -1)\""))
        #expect(settledBytes == Double(loop["outstandingBytes"] as? Int ?? -1))
        #expect(settled.loop("leakvisor_process_outstanding_blocks")?.1 == Double(loop["outstandingBlocks"] as? Int ?? -1))
        let classes = try #require((report["summary"] as? [String: Any])?["classes"] as? [String: [String: Int]])
        for (name, key) in [("definitely_lost", "definitelyLost"), ("indirectly_lost", "indirectlyLost"), ("possibly_lost", "possiblyLost"),
                            ("still_reachable", "stillReachable"), ("not_scanned", "notScanned")] {
            let metric = settled.samples["leakvisor_outstanding_bytes{class=\"\(name)\"}"]
            let reported = classes[key]?["bytes"].map(Double.init)
            // The shell and init (image tools, left out of both) are the only other processes.
            #expect(metric == reported, "\(name): scrape \(metric ?? -1), report \(reported ?? -1)")
        }
    }
}
