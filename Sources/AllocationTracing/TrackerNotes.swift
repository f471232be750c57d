import Synchronization

/// The tracker's notes for the user (files and functions not armed, breakpoints moved, address
/// spaces whose tracking ended, forged trampoline returns): human text by design, at most 200.
final class TrackerNotes: Sendable {
    static let limit = 200
    /// Guards the notes so far.
    private let lines = Mutex<[String]>([])

    func add(_ text: String) {
        lines.withLock { if $0.count < Self.limit { $0.append(text) } }
    }

    var all: [String] { lines.withLock { $0 } }

    /// Replaces the notes (a restored tracker's).
    func replace(with saved: [String]) {
        lines.withLock { $0 = Array(saved.prefix(Self.limit)) }
    }
}
