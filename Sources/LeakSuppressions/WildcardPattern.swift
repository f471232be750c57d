/// A name pattern with `*` (any run of characters, also none) and `?` (any one character),
/// matched against the whole name, as valgrind's suppressions do.
public struct WildcardPattern: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    private let characters: [Character]
    /// `?` stands for itself (LeakSanitizer's templates have `*` only).
    private let literalQuestionMark: Bool

    public init(_ text: String, literalQuestionMark: Bool = false) {
        self.text = text
        characters = Array(text)
        self.literalQuestionMark = literalQuestionMark
    }

    public var description: String { text }

    public func matches(_ name: String) -> Bool {
        let name = Array(name)
        // Iterative glob matching with one backtrack point (the latest `*`): linear in practice.
        var (p, n) = (0, 0)
        var star: (p: Int, n: Int)?
        while n < name.count {
            if p < characters.count, (characters[p] == "?" && !literalQuestionMark) || (characters[p] != "*" && characters[p] == name[n]) {
                p += 1
                n += 1
            } else if p < characters.count, characters[p] == "*" {
                star = (p, n)
                p += 1
            } else if let s = star {
                p = s.p + 1
                n = s.n + 1
                star = (s.p, s.n + 1)
            } else {
                return false
            }
        }
        while p < characters.count, characters[p] == "*" { p += 1 }
        return p == characters.count
    }
}
