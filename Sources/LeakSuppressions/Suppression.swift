import Reachability

/// One suppression, from a valgrind `.supp` entry or a LeakSanitizer `leak:` line.
public struct Suppression: Sendable, Equatable {
    /// What a valgrind entry's frame line names.
    public enum FramePattern: Sendable, Equatable {
        /// `fun:NAME`: the frame's function (an unsymbolized frame's is `???`).
        case function(WildcardPattern)
        /// `obj:PATH`: the ELF file the frame lies in (unknown: `???`).
        case object(WildcardPattern)
        /// `src:FILE` or `src:FILE:LINE`: the frame's source file name (its last component).
        case source(WildcardPattern, line: Int?)
        /// `...`: any number of frames, also none.
        case ellipsis
    }

    public enum Rule: Sendable, Equatable {
        /// valgrind: the stack, innermost first, starts with frames matching these (the entry
        /// need not name every frame); `kinds` nil matches every leak kind.
        case valgrind(frames: [FramePattern], kinds: Set<ReachabilityClass>?)
        /// LeakSanitizer: some frame's function, module path or source path contains the pattern
        /// (`*` wildcards; `^` and `$` anchor it at the start and end).
        case leakSanitizer(pattern: String)
    }

    /// valgrind's entry name, or `leak:PATTERN`.
    public var name: String
    /// Where it was read: file and line.
    public var file: String?
    public var line: Int
    public var rule: Rule

    public init(name: String, file: String? = nil, line: Int = 0, rule: Rule) {
        self.name = name
        self.file = file
        self.line = line
        self.rule = rule
    }
}
