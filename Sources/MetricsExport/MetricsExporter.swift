import Prometheus
import LeakAnalysis
import Synchronization

/// A tracking session's metrics in the Prometheus text exposition format (0.0.4; or OpenMetrics
/// 1.0.0, converted from it, for scrapers that ask for it), through
/// swift-prometheus's registry: scans are recorded as they happen (`recordScan`), everything else
/// is set from a `MetricsSample` at each scrape (`exposition(of:)`). Per-process series follow the
/// sample: a process no longer in it loses its series; at most `processSeriesLimit` are kept.
public final class MetricsExporter: Sendable {
    /// Per-process series kept at most (live ones first, then by outstanding bytes), so that a
    /// soak with many short-lived processes keeps the scrape bounded.
    public static let processSeriesLimit = 200
    /// Upper bounds of the scan pause histogram's buckets, in seconds.
    public static let pauseBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

    let registry = PrometheusCollectorRegistry()
    let scans: Counter
    let pauses: ValueHistogram
    let lastPause: Gauge
    let classBytes: [(ReachabilityName, Gauge)]
    let classBlocks: [(ReachabilityName, Gauge)]
    let allocatorEvents: [(TrackerCountsView.Event, Counter)]
    let traps: Counter
    let trackedProcesses: Gauge
    let trackingSeconds: Gauge
    let collectionSeconds: Gauge
    private let state = Mutex(State())

    struct State {
        /// Per-process gauges (bytes, blocks) by their label values.
        var processes: [ProcessLabels: (bytes: Gauge, blocks: Gauge)] = [:]
        var journalSamples: Counter?
    }

    struct ProcessLabels: Hashable {
        var pid: String
        var command: String
        var state: String
        var pairs: [(String, String)] { [("pid", pid), ("command", command), ("state", state)] }
    }

    public init() {
        func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "leakvisor", metricName: name, unitName: unit, helpText: help)
        }
        scans = registry.makeCounter(descriptor: descriptor("scans", "total", "Reachability scan rounds of the live tracked processes."))
        pauses = registry.makeValueHistogram(descriptor: descriptor("scan_pause", "seconds",
                                                                    "Time the guest was paused for each scan round's exact part."),
                                             buckets: Self.pauseBuckets)
        lastPause = registry.makeGauge(descriptor: descriptor("scan_last_pause", "seconds", "Pause of the latest scan round."))
        let bytes = descriptor("outstanding", "bytes",
                               "Outstanding (allocated, not released) bytes by the class the latest scan gave them.")
        let blocks = descriptor("outstanding", "blocks",
                                "Outstanding blocks by the class the latest scan gave them.")
        classBytes = ReachabilityName.allCases.map { [registry] in ($0, registry.makeGauge(descriptor: bytes, labels: [("class", $0.rawValue)])) }
        classBlocks = ReachabilityName.allCases.map { [registry] in ($0, registry.makeGauge(descriptor: blocks, labels: [("class", $0.rawValue)])) }
        let events = descriptor("allocator_events", "total", "Allocator calls trapped in the guest, by event.")
        allocatorEvents = TrackerCountsView.Event.allCases.map { [registry] event in
            (event, registry.makeCounter(descriptor: events, labels: [("event", event.rawValue)]))
        }
        traps = registry.makeCounter(descriptor: descriptor("traps", "total",
                                                            "Every trap the tracker handled (allocator entries, returns, releases, mmap and exit hooks): rate() gives traps per second."))
        trackedProcesses = registry.makeGauge(descriptor: descriptor("tracked_processes", "", "Live guest processes the ledger follows."))
        trackingSeconds = registry.makeGauge(descriptor: descriptor("tracking", "seconds", "Seconds since tracking started (the tracker's clock)."))
        collectionSeconds = registry.makeGauge(descriptor: descriptor("metrics_collection", "seconds",
                                                                      "Time the previous scrape took to collect its figures."))
    }

    /// Counts a scan round and its pause.
    public func recordScan(pauseSeconds: Double) {
        let pause = pauseSeconds.isFinite ? max(0, pauseSeconds) : 0
        state.withLock { _ in
            scans.increment()
            pauses.record(pause)
            lastPause.set(pause)
        }
    }

    /// Records how long collecting the figures of a scrape took (reported by the next scrape).
    public func recordCollection(seconds: Double) {
        collectionSeconds.set(seconds.isFinite ? max(0, seconds) : 0)
    }

    /// The text exposition of every metric in `format`, with the per-scrape ones set from `sample`.
    public func exposition(of sample: MetricsSample, format: MetricsFormat = .prometheus) -> [UInt8] {
        let text = state.withLock { s in
            update(&s, sample)
            return registry.emitToBuffer()
        }
        guard format == .openMetrics else { return text }
        return Array(OpenMetricsText.from(prometheus: String(decoding: text, as: UTF8.self)).utf8)
    }

    private func update(_ s: inout State, _ sample: MetricsSample) {
        for (name, gauge) in classBytes { gauge.set(Double(sample.classes[name.reachability].bytes)) }
        for (name, gauge) in classBlocks { gauge.set(Double(sample.classes[name.reachability].blocks)) }
        let view = TrackerCountsView(sample.counters)
        for (event, counter) in allocatorEvents { Self.set(counter, view[event]) }
        Self.set(traps, view.traps)
        trackedProcesses.set(Double(sample.trackedProcesses))
        trackingSeconds.set(sample.trackingSeconds.isFinite ? sample.trackingSeconds : 0)
        if let written = sample.journalSamples {
            let counter = s.journalSamples ?? registry.makeCounter(descriptor: MetricNameDescriptor(
                namespace: "leakvisor", metricName: "journal_samples", unitName: "total", helpText: "Samples written to the soak journal."))
            s.journalSamples = counter
            Self.set(counter, written)
        }
        updateProcesses(&s, sample.processes)
    }

    /// Sets the per-process gauges: one series per (pid, command, state), duplicates summed,
    /// at most `processSeriesLimit`; series of processes gone from the sample are removed.
    private func updateProcesses(_ s: inout State, _ processes: [MetricsSample.Process]) {
        var totals: [ProcessLabels: BlockTotal] = [:]
        for process in processes {
            let labels = ProcessLabels(pid: process.pid.map(String.init) ?? "", command: process.command ?? "", state: process.state)
            totals[labels, default: BlockTotal()] = totals[labels, default: BlockTotal()] + process.outstanding
        }
        let kept = totals.sorted { a, b in
            let (liveA, liveB) = (a.key.state == "live", b.key.state == "live")
            if liveA != liveB { return liveA }
            return (a.value.bytes, a.key.pid, a.key.command) > (b.value.bytes, b.key.pid, b.key.command)
        }.prefix(Self.processSeriesLimit)
        let keptLabels = Set(kept.map(\.key))
        for (labels, gauges) in s.processes where !keptLabels.contains(labels) {
            registry.unregisterGauge(gauges.bytes)
            registry.unregisterGauge(gauges.blocks)
            s.processes[labels] = nil
        }
        for (labels, total) in kept {
            let gauges = s.processes[labels] ?? (
                bytes: registry.makeGauge(descriptor: Self.processBytes, labels: labels.pairs),
                blocks: registry.makeGauge(descriptor: Self.processBlocks, labels: labels.pairs))
            s.processes[labels] = gauges
            gauges.bytes.set(Double(total.bytes))
            gauges.blocks.set(Double(total.blocks))
        }
    }

    static var processBytes: MetricNameDescriptor { MetricNameDescriptor(namespace: "leakvisor", metricName: "process_outstanding", unitName: "bytes",
                                                   helpText: "Outstanding bytes of one guest process (address space).") }
    static var processBlocks: MetricNameDescriptor { MetricNameDescriptor(namespace: "leakvisor", metricName: "process_outstanding", unitName: "blocks",
                                                    helpText: "Outstanding blocks of one guest process (address space).") }

    /// Sets a counter to a cumulative count read from the tracker.
    static func set(_ counter: Counter, _ value: Int) {
        counter.reset()
        counter.increment(by: Int64(max(0, value)))
    }
}
