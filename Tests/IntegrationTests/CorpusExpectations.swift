import Foundation

/// Bytes and blocks of one leak class.
struct CorpusTotal: Equatable, CustomStringConvertible {
    var bytes = 0, blocks = 0
    var description: String { "\(bytes)/\(blocks)" }

    /// `BYTES/BLOCKS`, as expected.tsv writes it.
    init?(_ text: Substring) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let bytes = Int(parts[0]), let blocks = Int(parts[1]) else { return nil }
        self.bytes = bytes; self.blocks = blocks
    }
    init(bytes: Int, blocks: Int) { self.bytes = bytes; self.blocks = blocks }
}

/// One process's leak classes as the corpus compares them.
struct CorpusClasses: Equatable, CustomStringConvertible {
    var definitelyLost = CorpusTotal(bytes: 0, blocks: 0), indirectlyLost = CorpusTotal(bytes: 0, blocks: 0)
    var possiblyLost = CorpusTotal(bytes: 0, blocks: 0), stillReachable = CorpusTotal(bytes: 0, blocks: 0)
    /// Of the still reachable blocks, those reachable only via a heuristic, by heuristic.
    var viaHeuristic: [String: CorpusTotal] = [:]

    var description: String {
        let heuristics = viaHeuristic.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        return "definite \(definitelyLost), indirect \(indirectlyLost), possible \(possiblyLost), reachable \(stillReachable)"
            + (heuristics.isEmpty ? "" : " (via \(heuristics.joined(separator: ", ")))")
    }
}

/// One build's expected classes and exit status, and where they come from.
struct CorpusExpectation {
    var classes: CorpusClasses
    var exitStatus: Int
    /// "valgrind", or "native: REASON" where adjustments.tsv replaced valgrind's answer.
    var source: String
}

/// The corpus's reference (guest-images/default/corpus): `expected.tsv` (valgrind's classes per
/// build, written by scripts/corpus-valgrind.sh) with `adjustments.tsv` applied: `native` rows
/// replace valgrind's answer by the native process's, `differs` rows name a build whose
/// remaining difference is explained (CORPUS.md).
struct CorpusExpectations {
    var expected: [String: CorpusExpectation] = [:]
    var knownDifferences: [String: String] = [:]

    static func load(from directory: URL) throws -> CorpusExpectations {
        var result = CorpusExpectations()
        for line in try lines(directory.appendingPathComponent("expected.tsv")) {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 7, let classes = parseClasses(fields[1...5]), let status = Int(fields[6]) else {
                throw CorpusFormatError(file: "expected.tsv", line: String(line))
            }
            result.expected[String(fields[0])] = CorpusExpectation(classes: classes, exitStatus: status, source: "valgrind")
        }
        for line in try lines(directory.appendingPathComponent("adjustments.tsv")) {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            switch fields.first {
            case "native" where fields.count == 8:
                guard let classes = parseClasses(fields[2...6]), var entry = result.expected[String(fields[1])] else {
                    throw CorpusFormatError(file: "adjustments.tsv", line: String(line))
                }
                entry.classes = classes
                entry.source = "native: \(fields[7])"
                result.expected[String(fields[1])] = entry
            case "differs" where fields.count == 3:
                result.knownDifferences[String(fields[1])] = String(fields[2])
            default:
                throw CorpusFormatError(file: "adjustments.tsv", line: String(line))
            }
        }
        return result
    }

    /// The lines of a table that are neither empty nor comments.
    private static func lines(_ url: URL) throws -> [Substring] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
    }

    /// definite, indirect, possible, reachable (BYTES/BLOCKS each), heuristics (`-` or `name:B/N,...`).
    private static func parseClasses(_ fields: ArraySlice<Substring>) -> CorpusClasses? {
        let f = Array(fields)
        guard f.count == 5, let d = CorpusTotal(f[0]), let i = CorpusTotal(f[1]), let p = CorpusTotal(f[2]),
              let r = CorpusTotal(f[3]) else { return nil }
        var classes = CorpusClasses(definitelyLost: d, indirectlyLost: i, possiblyLost: p, stillReachable: r)
        if f[4] != "-" {
            for item in f[4].split(separator: ",") {
                let kv = item.split(separator: ":")
                guard kv.count == 2, let total = CorpusTotal(kv[1]) else { return nil }
                classes.viaHeuristic[String(kv[0])] = total
            }
        }
        return classes
    }
}

/// A line of the corpus's tables that does not parse.
struct CorpusFormatError: Error, CustomStringConvertible {
    var file: String, line: String
    var description: String { "\(file): cannot read the line \(line)" }
}
