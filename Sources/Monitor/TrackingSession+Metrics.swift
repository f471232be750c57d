import Foundation
import MetricsExport

extension TrackingSession {
    /// The session's figures now, from a copy of the ledger (no scan, no pause of the guest).
    public func metricsSample() -> MetricsSample {
        MetricsSample(ledger: tracker.ledger.snapshot(), excludedCommands: options.includeImageTools ? [] : Self.imageTools,
                      counters: tracker.statistics, journalSamples: journal?.samplesWritten, trackingSeconds: tracker.seconds)
    }

    /// The metrics exposition now, in `format`: collected from the ledger as it is (never scanning).
    public func metricsExposition(_ format: MetricsFormat = .prometheus) -> MetricsServer.Body {
        let started = DispatchTime.now().uptimeNanoseconds
        let sample = metricsSample()
        let text = metrics.exposition(of: sample, format: format)
        metrics.recordCollection(seconds: Double(DispatchTime.now().uptimeNanoseconds &- started) / 1e9)
        return MetricsServer.Body(contentType: format.contentType, bytes: text)
    }

    /// Serves the session's metrics at `address` until stopped; says where (the port the kernel
    /// chose for port 0), and warns when the address is reachable from other machines.
    public func serveMetrics(at address: ListenAddress) throws(MetricsError) -> MetricsServer {
        let server = try MetricsServer(address: address) { [weak self] format in
            self?.metricsExposition(format) ?? MetricsServer.Body(contentType: format.contentType, bytes: [])
        }
        if !address.isLoopback {
            output.line("warning: metrics at \(server.address) are reachable from other machines: anyone there can read the guest's"
                        + " process names and allocation figures")
        }
        output.line("metrics: \(server.url)")
        return server
    }
}
