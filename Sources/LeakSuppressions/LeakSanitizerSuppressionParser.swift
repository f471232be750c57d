/// Reads LeakSanitizer's suppression lists: one `leak:PATTERN` per line, `#` comments, blank
/// lines. Other sanitizer types (`race:`, `called_from_lib:`, …) are refused as LeakSanitizer
/// refuses them.
public enum LeakSanitizerSuppressionParser {
    public static func parse(_ text: String, file: String) throws -> [Suppression] {
        var result: [Suppression] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingWhitespace
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let colon = line.firstIndex(of: ":") else {
                throw SuppressionError(file: file, line: index + 1, reason: "expected 'leak:PATTERN', found '\(line)'")
            }
            let type = line[..<colon].trimmingWhitespace
            let pattern = line[line.index(after: colon)...].trimmingWhitespace
            guard type == "leak" else {
                throw SuppressionError(file: file, line: index + 1, reason: "LeakSanitizer reads 'leak:' suppressions only, found '\(type):'")
            }
            guard !pattern.isEmpty else { throw SuppressionError(file: file, line: index + 1, reason: "'leak:' with no pattern") }
            result.append(Suppression(name: "leak:\(pattern)", file: file, line: index + 1, rule: .leakSanitizer(pattern: pattern)))
        }
        return result
    }
}
