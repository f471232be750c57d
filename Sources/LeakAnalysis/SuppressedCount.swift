/// What one suppression removed from a report: the groups it matched, their blocks and bytes
/// (valgrind's suppcounts, LeakSanitizer's "Suppressions used").
public struct SuppressedCount: Sendable, Codable, Equatable {
    /// The suppression's name (valgrind) or its pattern (`leak:PATTERN` for LeakSanitizer's).
    public var name: String
    /// The file it came from.
    public var file: String?
    /// Allocation groups (valgrind's loss records) it matched.
    public var groups: Int
    public var blocks: Int
    /// Saturated at 2^64 − 1.
    public var bytes: UInt64

    public init(name: String, file: String? = nil, groups: Int = 0, blocks: Int = 0, bytes: UInt64 = 0) {
        self.name = name
        self.file = file
        self.groups = groups
        self.blocks = blocks
        self.bytes = bytes
    }
}
