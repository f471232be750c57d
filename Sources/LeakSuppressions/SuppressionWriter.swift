import LeakAnalysis
import Reachability

/// `--gen-suppressions`: a valgrind-syntax entry per leak group, as `valgrind --gen-suppressions=all`
/// writes them (`fun:` per symbolized frame, `obj:` for one without a name, innermost first).
public enum SuppressionWriter {
    /// Frames per entry (valgrind writes up to --num-callers, 12 by default).
    public static let maxFrames = 24

    public static func valgrindEntries(for report: LeakReport) -> String {
        var out = ""
        var seen = Set<String>()
        for process in report.processes {
            for group in process.groups {
                guard let reachability = group.reachability, reachability.isLeak else { continue }
                let body = "   Memcheck:Leak\n   match-leak-kinds: \(kindWord(reachability))\n"
                    + group.frames.prefix(maxFrames).map { "   \(frameLine($0))\n" }.joined()
                guard seen.insert(body).inserted else { continue }   // one entry per distinct stack and kind
                let blame = group.frames.dropFirst().first { $0.function != nil }?.function ?? group.function.rawValue
                out += "{\n   leakvisor-\(kindWord(reachability))-\(process.command ?? "unknown")-\(blame)\n" + body + "}\n"
            }
        }
        return out
    }

    static func kindWord(_ reachability: ReachabilityClass) -> String {
        switch reachability {
        case .directLeak: "definite"
        case .indirectLeak: "indirect"
        case .possiblyLost: "possible"
        case .reachable: "reachable"
        }
    }

    static func frameLine(_ frame: ReportFrame) -> String {
        if let function = frame.function, !function.isEmpty { return "fun:\(function)" }
        if let module = frame.module { return "obj:\(module)" }
        return "fun:*"
    }
}
