/// Why a journal could not be opened, read or written. Every failure of the journal is one of
/// these; none traps.
public enum JournalError: Error, Equatable, CustomStringConvertible {
    /// No file at the path.
    case missing(path: String)
    /// An SQLite database, or another file, that is not a LeakVisor journal.
    case foreign(path: String, why: String)
    /// A journal whose file or contents are damaged (not a database, a broken row or report).
    case corrupt(path: String, why: String)
    /// A journal written by a newer LeakVisor, with a schema this one does not know.
    case newerSchema(path: String, version: Int)
    /// The database refused an operation (disk full, permissions, locked).
    case database(path: String, why: String)
    /// The journal holds no sample at or before the time asked for.
    case noSample(atOrBefore: Double)
    /// The journal holds no sample at all.
    case empty(path: String)

    public var description: String {
        switch self {
        case .missing(let path): return "no journal at \(path)"
        case .foreign(let path, let why): return "\(path) is not a LeakVisor journal (\(why))"
        case .corrupt(let path, let why): return "the journal \(path) is damaged: \(why)"
        case .newerSchema(let path, let version):
            return "the journal \(path) has schema version \(version), newer than this leakvisor reads (\(JournalSchema.version))"
        case .database(let path, let why): return "journal \(path): \(why)"
        case .noSample(let seconds):
            return "the journal has no sample at or before \(seconds) s (seconds since tracking started)"
        case .empty(let path): return "the journal \(path) holds no sample yet"
        }
    }
}
