import Glibc

/// One fuzz target: a name, a one-time setup (e.g. loading the real kernel) and one input's run.
struct FuzzTarget: Sendable {
    let name: String
    var prepare: @Sendable () -> Void = {}
    let run: @Sendable (FuzzInput) -> Void
}

enum FuzzTargets {
    static let all: [FuzzTarget] = [
        BTFTarget.target, KallsymsTarget.target, ORCTarget.target, PageWalkerTarget.target, KernelViewTarget.target,
        ELFSegmentsTarget.target, VirtioTarget.target, ControlTarget.target, ReportTarget.target,
    ]

    static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }

    /// Set once in `main` before libFuzzer starts calling back.
    nonisolated(unsafe) static var selected: FuzzTarget?
}

/// Writes a line to standard error.
func printError(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
}
