/// The formats `leakvisor report` writes a `LeakReport` in.
public enum ReportFormat: String, Sendable, CaseIterable {
    /// LeakSanitizer's layout (the monitor's own text).
    case text
    /// The report value itself (docs/schemas/leak-report-v2.schema.json).
    case json
    /// valgrind's XML output, protocol 4, as memcheck writes it.
    case valgrindXML = "valgrind-xml"
    /// SARIF 2.1.0 for code scanning.
    case sarif
    /// A gzipped profile.proto heap profile for `go tool pprof` and continuous profilers.
    case pprof
    /// Folded stacks (`outer;…;inner bytes`) for flamegraph.pl and inferno.
    case folded
    /// One self-contained HTML page: summary, leak groups, plots of outstanding bytes.
    case html

    /// Bytes a terminal should not be sent.
    public var isBinary: Bool { self == .pprof }

    /// The usual file name extension.
    public var fileExtension: String {
        switch self {
        case .text: "txt"
        case .json: "json"
        case .valgrindXML: "xml"
        case .sarif: "sarif"
        case .pprof: "pb.gz"
        case .folded: "folded"
        case .html: "html"
        }
    }
}
