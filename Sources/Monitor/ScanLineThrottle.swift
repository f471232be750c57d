/// Whether a scan's progress line is said: always for a scan someone asked for; for a periodic
/// scan when its findings changed since the last line, and at least every 6th time.
struct ScanLineThrottle: Sendable {
    private var lastFindings = ""
    private var quietSince = 0

    /// Records a scan's findings; true when its line is to be said.
    mutating func shouldSay(findings: String, periodic: Bool) -> Bool {
        let quiet = periodic && findings == lastFindings && quietSince < 5
        lastFindings = findings
        quietSince = quiet ? quietSince + 1 : 0
        return !quiet
    }
}
