import Foundation

/// The text formats a scrape can ask for: the Prometheus exposition format 0.0.4 (the default)
/// or OpenMetrics 1.0.0, chosen from the request's `Accept` header as Prometheus itself asks.
public enum MetricsFormat: Sendable, Equatable {
    case prometheus
    case openMetrics

    public var contentType: String {
        switch self {
        case .prometheus: return "text/plain; version=0.0.4; charset=utf-8"
        case .openMetrics: return "application/openmetrics-text; version=1.0.0; charset=utf-8"
        }
    }

    /// OpenMetrics when `accept` lists `application/openmetrics-text` with a non-zero quality
    /// that is at least that of any `text/plain` it lists; otherwise (no header included) Prometheus text.
    public init(accept: String?) {
        var openMetrics = -1.0, plain = -1.0
        for item in (accept ?? "").split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let type = parts.first else { continue }
            var quality = 1.0
            for parameter in parts.dropFirst() where parameter.hasPrefix("q=") {
                quality = Double(parameter.dropFirst(2)) ?? 0
            }
            if type == "application/openmetrics-text" { openMetrics = max(openMetrics, quality) }
            if type == "text/plain" || type == "*/*" || type == "text/*" { plain = max(plain, quality) }
        }
        self = openMetrics > 0 && openMetrics >= plain ? .openMetrics : .prometheus
    }
}

/// Prometheus text (0.0.4, as swift-prometheus writes it) turned into OpenMetrics 1.0.0 text: a
/// counter's family is named without its `_total` suffix in `# TYPE` and `# HELP` (its samples keep
/// it), blank lines go, and the exposition ends with `# EOF`.
public enum OpenMetricsText {
    public static func from(prometheus text: String) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        var counters: Set<Substring> = []
        for line in lines where line.hasPrefix("# TYPE ") {
            let fields = line.split(separator: " ")
            if fields.count == 4, fields[3] == "counter", fields[2].hasSuffix("_total") { counters.insert(fields[2]) }
        }
        var out = ""
        for line in lines where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            if line.hasPrefix("# TYPE ") || line.hasPrefix("# HELP ") {
                let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
                if fields.count >= 3, counters.contains(fields[2]) {
                    var rewritten = fields.map(String.init)
                    rewritten[2] = String(fields[2].dropLast("_total".count))
                    out += rewritten.joined(separator: " ") + "\n"
                    continue
                }
            }
            out += line + "\n"
        }
        return out + "# EOF\n"
    }
}
