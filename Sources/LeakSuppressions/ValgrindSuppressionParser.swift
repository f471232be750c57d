import Reachability

/// Reads valgrind's suppression files: entries `{ NAME / Tool:Kind / [extra line] / frame lines }`
/// with `fun:`, `obj:`, `src:` and `...` frame lines and `#` comment lines. Entries for
/// `Memcheck:Leak` become suppressions; entries of other kinds (Cond, Addr4, Param, other tools)
/// are read and skipped, since a report holds leaks only.
public enum ValgrindSuppressionParser {
    public static func parse(_ text: String, file: String) throws -> [Suppression] {
        var result: [Suppression] = []
        var entry: [(line: Int, text: String)]?
        var opened = 0
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingWhitespace
            let number = index + 1
            if line.isEmpty || line.hasPrefix("#") { continue }
            if entry == nil {
                guard line == "{" else { throw SuppressionError(file: file, line: number, reason: "expected '{' to open a suppression, found '\(line)'") }
                entry = []
                opened = number
            } else if line == "}" {
                if let suppression = try make(entry ?? [], file: file, opened: opened) { result.append(suppression) }
                entry = nil
            } else {
                entry?.append((number, line))
            }
        }
        if entry != nil { throw SuppressionError(file: file, line: opened, reason: "suppression opened here is never closed with '}'") }
        return result
    }

    static func make(_ lines: [(line: Int, text: String)], file: String, opened: Int) throws -> Suppression? {
        guard lines.count >= 2 else {
            throw SuppressionError(file: file, line: opened, reason: "a suppression needs a name and a Tool:Kind line")
        }
        let name = lines[0].text
        let toolKind = lines[1].text.split(separator: ":", maxSplits: 1)
        guard toolKind.count == 2 else {
            throw SuppressionError(file: file, line: lines[1].line, reason: "expected Tool:Kind (e.g. Memcheck:Leak), found '\(lines[1].text)'")
        }
        let tools = toolKind[0].split(separator: ",").map { $0.trimmingWhitespace }
        guard tools.contains("Memcheck"), toolKind[1].trimmingWhitespace == "Leak" else { return nil }
        var kinds: Set<ReachabilityClass>?
        var frames: [Suppression.FramePattern] = []
        for (number, text) in lines.dropFirst(2) {
            if text.hasPrefix("match-leak-kinds:") {
                guard frames.isEmpty, kinds == nil else {
                    throw SuppressionError(file: file, line: number, reason: "match-leak-kinds must come once, before the frames")
                }
                kinds = try leakKinds(String(text.dropFirst("match-leak-kinds:".count)), file: file, line: number)
            } else if text == "..." {
                frames.append(.ellipsis)
            } else if text.hasPrefix("fun:") {
                frames.append(.function(WildcardPattern(String(text.dropFirst(4)))))
            } else if text.hasPrefix("obj:") {
                frames.append(.object(WildcardPattern(String(text.dropFirst(4)))))
            } else if text.hasPrefix("src:") {
                frames.append(try source(String(text.dropFirst(4)), file: file, line: number))
            } else {
                throw SuppressionError(file: file, line: number, reason: "expected fun:, obj:, src:, ... or match-leak-kinds:, found '\(text)'")
            }
        }
        guard !frames.isEmpty else {
            throw SuppressionError(file: file, line: opened, reason: "suppression '\(name)' names no frame")
        }
        return Suppression(name: name, file: file, line: opened, rule: .valgrind(frames: frames, kinds: kinds))
    }

    /// "definite,possible", "all", "none" → the classes (valgrind's --show-leak-kinds names).
    static func leakKinds(_ list: String, file: String, line: Int) throws -> Set<ReachabilityClass> {
        var kinds: Set<ReachabilityClass> = []
        for word in list.split(separator: ",").map({ $0.trimmingWhitespace }) {
            switch word {
            case "definite": kinds.insert(.directLeak)
            case "indirect": kinds.insert(.indirectLeak)
            case "possible": kinds.insert(.possiblyLost)
            case "reachable": kinds.insert(.reachable)
            case "all": kinds.formUnion(ReachabilityClass.allCases)
            case "none": break
            default: throw SuppressionError(file: file, line: line, reason: "unknown leak kind '\(word)' (definite, indirect, possible, reachable, all, none)")
            }
        }
        return kinds
    }

    /// "leak.c" or "leak.c:12".
    static func source(_ text: String, file: String, line: Int) throws -> Suppression.FramePattern {
        if let colon = text.lastIndex(of: ":"), let number = Int(text[text.index(after: colon)...]) {
            return .source(WildcardPattern(String(text[..<colon])), line: number)
        }
        return .source(WildcardPattern(text), line: nil)
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (and a carriage return).
    var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[start...end])
    }
}
