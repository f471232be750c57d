import LeakAnalysis
import Reachability

extension Suppression {
    /// Whether this suppression covers a group of `reachability` allocated from `frames`
    /// (innermost first, the allocator's entry at 0).
    public func matches(_ frames: [ReportFrame], reachability: ReachabilityClass?) -> Bool {
        switch rule {
        case .valgrind(let patterns, let kinds):
            guard let reachability else { return false }   // not scanned: not a leak kind
            if let kinds, !kinds.contains(reachability) { return false }
            return Self.stackMatches(patterns, frames)
        case .leakSanitizer(let pattern):
            guard reachability?.isLeak == true else { return false }   // LeakSanitizer reports leaks only
            let glob = Self.leakSanitizerGlob(pattern)
            return frames.contains { frame in
                [frame.function, frame.module, frame.file].contains { $0.map(glob.matches) ?? false }
            }
        }
    }

    /// valgrind's rule: the patterns match the stack's first frames, `...` standing for any
    /// number of frames. Dynamic programming over (pattern, frame) positions.
    static func stackMatches(_ patterns: [FramePattern], _ frames: [ReportFrame]) -> Bool {
        // reachable[f]: patterns[..<p] can consume exactly frames[..<f].
        var reachable = [Bool](repeating: false, count: frames.count + 1)
        reachable[0] = true
        for pattern in patterns {
            var next = [Bool](repeating: false, count: frames.count + 1)
            for f in 0...frames.count where reachable[f] {
                if case .ellipsis = pattern {
                    for g in f...frames.count { next[g] = true }
                    break
                } else if f < frames.count, frameMatches(pattern, frames[f]) {
                    next[f + 1] = true
                }
            }
            reachable = next
            guard reachable.contains(true) else { return false }
        }
        return true
    }

    static func frameMatches(_ pattern: FramePattern, _ frame: ReportFrame) -> Bool {
        switch pattern {
        case .function(let name): return name.matches(frame.function.flatMap { $0.isEmpty ? nil : $0 } ?? "???")
        case .object(let path): return path.matches(frame.module ?? "???")
        case .source(let file, let line):
            guard let path = frame.file else { return false }
            let name = path.split(separator: "/").last.map(String.init) ?? path
            return file.matches(name) && (line == nil || line == frame.line)
        case .ellipsis: return true
        }
    }

    /// LeakSanitizer's template as a whole-name glob: unanchored ends match anywhere.
    static func leakSanitizerGlob(_ pattern: String) -> WildcardPattern {
        var text = Substring(pattern)
        let start = text.hasPrefix("^"), end = text.hasSuffix("$") && text.count > (start ? 1 : 0)
        if start { text = text.dropFirst() }
        if end { text = text.dropLast() }
        // `?` is literal for LeakSanitizer; a glob class would change its meaning, so it is kept
        // as a wildcard only where LeakSanitizer has one (`*`).
        return WildcardPattern((start ? "" : "*") + text + (end ? "" : "*"), literalQuestionMark: true)
    }
}
