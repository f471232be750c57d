/// What a renderer needs beside the report.
public struct ReportRenderOptions: Sendable {
    /// The repository root on the host: SARIF locations are made relative to it (files outside
    /// it keep their absolute path and are marked so).
    public var sourceRoot: String?
    /// Outstanding bytes over time per top site and per process, for the HTML plots (empty: the
    /// page has the summary and the groups only).
    public var series: [OutstandingSeries]
    /// Frames per stack in the text and HTML forms.
    public var maxFrames: Int
    /// The text form lists still-reachable groups too.
    public var showReachable: Bool

    public init(sourceRoot: String? = nil, series: [OutstandingSeries] = [], maxFrames: Int = 16, showReachable: Bool = true) {
        self.sourceRoot = sourceRoot
        self.series = series
        self.maxFrames = maxFrames
        self.showReachable = showReachable
    }
}
