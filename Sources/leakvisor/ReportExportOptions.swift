import ArgumentParser
import ReportFormats

/// `leakvisor report`'s options for a report file: where it comes from, the format, suppressions.
struct ReportExportOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Read the report from this JSON file (written by `run --report`) instead of asking a running monitor.",
                               valueName: "report.json"))
    var input: String?

    @Option(help: ArgumentHelp("The format (default: text, or json with -o or --json).",
                               valueName: "format"))
    var format: ReportFormat?

    @Option(help: ArgumentHelp("sarif: make source paths under this directory repository-relative (%SRCROOT%).", valueName: "dir"))
    var sourceRoot: String?

    @Option(help: ArgumentHelp("Suppress the leaks a valgrind .supp file or a LeakSanitizer leak: list names (repeatable).",
                               valueName: "file"))
    var suppressions: [String] = []

    @Option(help: ArgumentHelp("html: plot these series of outstanding bytes over time (a JSON array of {subject, name, points}).",
                               valueName: "series.json"))
    var series: String?

    @Flag(help: "Write a valgrind suppression entry per leak group left (after --suppressions) instead of the report.")
    var genSuppressions = false
}
