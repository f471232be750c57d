/// Outstanding bytes over time of one allocation site or one process (from a soak's journal),
/// plotted by the HTML report. `report --series FILE` reads a JSON array of these:
/// `[{"subject": "process", "name": "prog (pid 42)", "points": [{"seconds": 1.5, "bytes": 4096}]}]`.
public struct OutstandingSeries: Sendable, Equatable, Codable {
    /// One sample: seconds since tracking started, outstanding bytes then.
    public struct Point: Sendable, Equatable, Codable {
        public var seconds: Double
        public var bytes: UInt64

        public init(seconds: Double, bytes: UInt64) {
            self.seconds = seconds
            self.bytes = bytes
        }
    }

    /// What the series is of: a site or a process.
    public enum Subject: String, Sendable, Equatable, Codable {
        case site, process
    }

    public var subject: Subject
    /// A label: the site's innermost program frame, or the process's command and pid.
    public var name: String
    public var points: [Point]

    public init(subject: Subject, name: String, points: [Point]) {
        self.subject = subject
        self.name = name
        self.points = points
    }
}
