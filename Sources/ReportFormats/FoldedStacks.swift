import LeakAnalysis

/// Folded stacks for flamegraph.pl and inferno: one line per allocation group,
/// `process;class;outermost;…;allocator BYTES`, root first. The process and the leak class are
/// the two outermost frames, so a flame graph splits by process, then by class.
enum FoldedStacks {
    static func render(_ report: LeakReport) -> String {
        var out = ""
        for process in report.processes {
            let root = clean("\(process.command ?? "unknown") (pid \(process.pid.map(String.init) ?? "?"))")
            for group in process.groups where group.bytes > 0 {
                let frames = group.frames.reversed().map { clean(FrameNaming.name($0)) }
                let stack = [root, clean(group.reachability?.rawValue ?? "not scanned")] + frames
                out += stack.joined(separator: ";") + " \(group.bytes)\n"
            }
        }
        return out
    }

    /// A frame name without the format's separators: `;` splits frames, a newline splits lines.
    static func clean(_ name: String) -> String {
        let cleaned = String(name.map { $0 == ";" ? ":" : ($0 == "\n" || $0 == "\r") ? " " : $0 })
        return cleaned.isEmpty ? "?" : cleaned
    }
}
