import AllocationLedger
import AllocationTracing
import Foundation
import Introspection
import LeakAnalysis
import MetricsExport
import Reachability
import Testing
import X86

/// The metrics' values from real reports and a real ledger, as the Prometheus text format says them.
@Suite struct MetricsExportTests {
    static func counters() -> TrackerCounters {
        var counters = TrackerCounters()
        counters.entries = 120
        counters.nestedEntries = 4
        counters.returns = 118
        counters.releases = 77
        counters.mmapHooks = 9
        counters.exitHooks = 2
        return counters
    }

    @Test func theLeakTreeReportsFiguresAreTheMetrics() throws {
        let report = try ReportFixtures.leakTree()
        let exporter = MetricsExporter()
        let text = MetricsText(exporter.exposition(of: MetricsSample(report: report, counters: Self.counters(), journalSamples: 5)))
        let classes = report.summary.classes
        #expect(text["leakvisor_outstanding_bytes{class=\"definitely_lost\"}"] == 96)
        #expect(text["leakvisor_outstanding_blocks{class=\"definitely_lost\"}"] == 3)
        #expect(text["leakvisor_outstanding_bytes{class=\"indirectly_lost\"}"] == Double(classes.indirectlyLost.bytes))
        #expect(text["leakvisor_outstanding_bytes{class=\"possibly_lost\"}"] == 128)
        #expect(text["leakvisor_outstanding_bytes{class=\"still_reachable\"}"] == 1995)
        #expect(text["leakvisor_outstanding_blocks{class=\"not_scanned\"}"] == 0)
        #expect(text["leakvisor_process_outstanding_bytes{pid=\"95\",command=\"lv-leak-tree\",state=\"exited\"}"] == 2395)
        #expect(text["leakvisor_process_outstanding_blocks{pid=\"95\",command=\"lv-leak-tree\",state=\"exited\"}"] == 21)
        #expect(text["leakvisor_allocator_events_total{event=\"entry\"}"] == 120)
        #expect(text["leakvisor_allocator_events_total{event=\"release\"}"] == 77)
        #expect(text["leakvisor_allocator_events_total{event=\"return\"}"] == 118)
        #expect(text["leakvisor_allocator_events_total{event=\"nested_entry\"}"] == 4)
        #expect(text["leakvisor_traps_total"] == Double(120 + 118 + 77 + 9 + 2))
        #expect(text["leakvisor_tracked_processes"] == 0, "the process exited")
        #expect(text["leakvisor_journal_samples_total"] == 5)
        #expect(text["leakvisor_tracking_seconds"] == report.seconds)
        #expect(text["leakvisor_scans_total"] == 0)
        for family in ["leakvisor_outstanding_bytes", "leakvisor_outstanding_blocks", "leakvisor_process_outstanding_bytes",
                       "leakvisor_process_outstanding_blocks", "leakvisor_scans_total", "leakvisor_scan_pause_seconds",
                       "leakvisor_scan_last_pause_seconds", "leakvisor_allocator_events_total", "leakvisor_traps_total",
                       "leakvisor_tracked_processes", "leakvisor_journal_samples_total", "leakvisor_tracking_seconds"] {
            #expect(text.help[family] != nil && text.types[family] != nil, "\(family) has HELP and TYPE")
        }
        #expect(text.types["leakvisor_scan_pause_seconds"] == "histogram")
        #expect(text.types["leakvisor_traps_total"] == "counter")
        #expect(text.types["leakvisor_outstanding_bytes"] == "gauge")
    }

    @Test func withoutAJournalThereIsNoJournalMetric() throws {
        let text = MetricsText(MetricsExporter().exposition(of: MetricsSample(report: try ReportFixtures.leakCxx(), counters: TrackerCounters())))
        #expect(text.types["leakvisor_journal_samples_total"] == nil)
        #expect(text.samples.keys.contains { $0.hasPrefix("leakvisor_process_outstanding_bytes{") })
    }

    @Test func scansCountAndTheirPausesFillTheHistogram() throws {
        let exporter = MetricsExporter()
        exporter.recordScan(pauseSeconds: 0.002)
        exporter.recordScan(pauseSeconds: 0.3)
        exporter.recordScan(pauseSeconds: -1)
        exporter.recordScan(pauseSeconds: .nan)
        let text = MetricsText(exporter.exposition(of: MetricsSample(report: try ReportFixtures.empty(), counters: TrackerCounters())))
        #expect(text["leakvisor_scans_total"] == 4)
        #expect(text["leakvisor_scan_pause_seconds_count"] == 4)
        #expect(abs((text["leakvisor_scan_pause_seconds_sum"] ?? 0) - 0.302) < 1e-9)
        #expect(text["leakvisor_scan_pause_seconds_bucket{le=\"0.0025\"}"] == 3, "0.002 and the two refused values, as 0")
        #expect(text["leakvisor_scan_pause_seconds_bucket{le=\"0.5\"}"] == 4)
        #expect(text["leakvisor_scan_pause_seconds_bucket{le=\"+Inf\"}"] == 4)
        #expect(text["leakvisor_scan_last_pause_seconds"] == 0)
    }

    @Test func aProcessGoneFromTheLedgerLosesItsSeriesAndDuplicatesAreSummed() {
        let exporter = MetricsExporter()
        func sample(_ processes: [MetricsSample.Process]) -> MetricsSample {
            MetricsSample(processes: processes, classes: ClassTotals(), counters: TrackerCounters(), trackedProcesses: processes.count,
                          journalSamples: nil, trackingSeconds: 1)
        }
        let a = MetricsSample.Process(pid: 7, command: "a", state: "live", outstanding: BlockTotal(blocks: 1, bytes: 10))
        let b = MetricsSample.Process(pid: 8, command: "b", state: "live", outstanding: BlockTotal(blocks: 2, bytes: 20))
        var text = MetricsText(exporter.exposition(of: sample([a, b, b])))
        #expect(text["leakvisor_process_outstanding_bytes{pid=\"7\",command=\"a\",state=\"live\"}"] == 10)
        #expect(text["leakvisor_process_outstanding_bytes{pid=\"8\",command=\"b\",state=\"live\"}"] == 40)
        text = MetricsText(exporter.exposition(of: sample([b])))
        #expect(text["leakvisor_process_outstanding_bytes{pid=\"7\",command=\"a\",state=\"live\"}"] == nil)
        #expect(text["leakvisor_process_outstanding_blocks{pid=\"8\",command=\"b\",state=\"live\"}"] == 2)
        text = MetricsText(exporter.exposition(of: sample([])))
        #expect(!text.samples.keys.contains { $0.hasPrefix("leakvisor_process_") })
    }

    @Test func perProcessSeriesAreBoundedLiveFirstThenLargest() {
        let exporter = MetricsExporter()
        let exited = (0..<300).map {
            MetricsSample.Process(pid: Int32($0), command: "p", state: "exited", outstanding: BlockTotal(blocks: 1, bytes: UInt64($0)))
        }
        let live = MetricsSample.Process(pid: 1000, command: "live", state: "live", outstanding: BlockTotal(blocks: 1, bytes: 1))
        let text = MetricsText(exporter.exposition(of: MetricsSample(processes: exited + [live], classes: ClassTotals(),
                                                                     counters: TrackerCounters(), trackedProcesses: 1,
                                                                     journalSamples: nil, trackingSeconds: 1)))
        let series = text.samples.keys.filter { $0.hasPrefix("leakvisor_process_outstanding_bytes{") }
        #expect(series.count == MetricsExporter.processSeriesLimit)
        #expect(text["leakvisor_process_outstanding_bytes{pid=\"1000\",command=\"live\",state=\"live\"}"] == 1)
        #expect(text["leakvisor_process_outstanding_bytes{pid=\"299\",command=\"p\",state=\"exited\"}"] == 299)
        #expect(text["leakvisor_process_outstanding_bytes{pid=\"0\",command=\"p\",state=\"exited\"}"] == nil)
    }

    /// A guest names its processes: quotes, backslashes and newlines in a command stay inside its label.
    @Test func hostileCommandNamesAndHugeCountsStayWellFormed() throws {
        var counters = TrackerCounters()
        counters.entries = .max
        counters.returns = .max
        counters.releases = -5
        let process = MetricsSample.Process(pid: nil, command: "a\"b\\c\nd} 1", state: "live", outstanding: BlockTotal(blocks: .max, bytes: .max))
        var classes = ClassTotals()
        classes.definitelyLost = BlockTotal(blocks: .max, bytes: .max)
        let bytes = MetricsExporter().exposition(of: MetricsSample(processes: [process], classes: classes, counters: counters,
                                                                   trackedProcesses: 1, journalSamples: nil, trackingSeconds: .infinity))
        let text = MetricsText(bytes)
        #expect(text["leakvisor_process_outstanding_bytes{pid=\"\",command=\"a\\\"b\\\\c\\nd} 1\",state=\"live\"}"] == Double(UInt64.max))
        #expect(text["leakvisor_traps_total"] == Double(Int.max))
        #expect(text["leakvisor_allocator_events_total{event=\"release\"}"] == 0)
        #expect(text["leakvisor_tracking_seconds"] == 0)
        try Self.promtoolAccepts(bytes)
    }

    /// The figures read straight from the ledger (what a scrape uses) are those of the report the
    /// builder makes from the same ledger: per process and per class, image tools left out.
    @Test func theLedgerFiguresMatchTheReportBuiltFromTheSameLedger() {
        let ledger = AllocationLedger()
        let program = PageTableRoot(cr3: 0x1000), shell = PageTableRoot(cr3: 0x2000), unnamed = PageTableRoot(cr3: 0x3000)
        ledger.identify(program, as: ProcessIdentity(pid: 41, command: "lv-leak-loop"), modules: [])
        ledger.identify(shell, as: ProcessIdentity(pid: 1, command: "busybox"), modules: [])
        for i in 0..<10 as Range<UInt64> {
            ledger.allocate(in: program, address: 0x10000 + i * 0x100, size: 32 + i, function: .malloc, stack: [0x401000, 0x401100 + i % 3],
                            thread: 41, time: i)
        }
        ledger.allocate(in: shell, address: 0x20000, size: 500, function: .malloc, stack: [0x1], thread: 1, time: 1)
        ledger.allocate(in: unnamed, address: 0x30000, size: 64, function: .calloc, stack: [0x2], thread: 9, time: 1)
        let verdicts: [UInt64: BlockVerdict] = [
            0x10000: BlockVerdict(reachability: .directLeak, leader: nil, indirectBytes: 33, lastWritten: 1),
            0x10100: BlockVerdict(reachability: .indirectLeak, leader: 0x10000, indirectBytes: 0, lastWritten: 1),
            0x10200: BlockVerdict(reachability: .possiblyLost, leader: nil, indirectBytes: 0, lastWritten: 1),
            0x10300: BlockVerdict(reachability: .reachable, leader: nil, indirectBytes: 0, lastWritten: 1),
        ]
        let figures = ScanFigures(kind: "full", threads: 1, rootBytes: 0, bytesScanned: 0, pagesRead: 0, pagesReused: 0, pagesDirtied: 0,
                                  pauseSeconds: 0, totalSeconds: 0)
        ledger.record(SpaceScan(time: 20, verdicts: verdicts, figures: figures, notes: []), for: program, staleAfter: 1_000_000)
        ledger.retire(unnamed, as: .exited, time: 30)

        var builder = LeakReportBuilder(files: GuestSymbolFiles())
        builder.excludedCommands = ["busybox"]
        let snapshot = ledger.snapshot()
        let report = builder.build(snapshot, seconds: 2)
        let fromLedger = MetricsSample(ledger: snapshot, excludedCommands: ["busybox"], counters: TrackerCounters(), journalSamples: nil,
                                       trackingSeconds: 2)
        let fromReport = MetricsSample(report: report, counters: TrackerCounters())
        #expect(fromLedger.classes == report.summary.classes)
        #expect(fromLedger.classes.definitelyLost == BlockTotal(blocks: 1, bytes: 32))
        #expect(fromLedger.classes.notScanned.blocks == 6 + 1)
        #expect(Set(fromLedger.processes.map { "\($0.pid ?? -1) \($0.state) \($0.outstanding.bytes)" })
                == Set(fromReport.processes.map { "\($0.pid ?? -1) \($0.state) \($0.outstanding.bytes)" }))
        #expect(fromLedger.outstanding == BlockTotal(blocks: 11, bytes: UInt64((0..<10).map { 32 + $0 }.reduce(0, +) + 64)))
        #expect(fromLedger.trackedProcesses == 2, "the program and the shell are live; the unnamed space exited")
    }

    /// `promtool check metrics` (Debian's prometheus) reads the exposition, when it is installed.
    static func promtoolAccepts(_ bytes: [UInt8]) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") else { return }
        let result = try ReportFixtures.run("/usr/bin/promtool", ["check", "metrics"], input: Data(bytes))
        #expect(result.status == 0, "promtool: \(String(decoding: result.output, as: UTF8.self))")
    }

    @Test func promtoolAcceptsAFullExposition() throws {
        let exporter = MetricsExporter()
        exporter.recordScan(pauseSeconds: 0.004)
        try Self.promtoolAccepts(exporter.exposition(of: MetricsSample(report: try ReportFixtures.leakTree(), counters: Self.counters(),
                                                                       journalSamples: 3)))
    }
}
