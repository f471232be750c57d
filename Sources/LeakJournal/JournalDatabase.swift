import Foundation
import GRDB

/// Opening journal files and turning the database's failures into `JournalError`s.
enum JournalDatabase {
    /// WAL (a reader never blocks the monitor; a killed monitor leaves every committed sample),
    /// synchronous NORMAL (a commit survives the process's death, not necessarily the host's power),
    /// and a WAL file trimmed back to 4 MiB after checkpoints.
    static func open(_ path: String, readonly: Bool) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.readonly = readonly
        configuration.label = "leakvisor-journal"
        configuration.busyMode = .timeout(5)
        if !readonly {
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
                try db.execute(sql: "PRAGMA journal_size_limit = 4194304")
            }
        }
        do {
            return try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw mapped(error, path: path)
        }
    }

    /// A database or decoding failure as a `JournalError` about `path`.
    static func mapped(_ error: any Error, path: String) -> JournalError {
        if let error = error as? JournalError { return error }
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_NOTADB, .SQLITE_CORRUPT: return .corrupt(path: path, why: error.message ?? "\(error.resultCode)")
            default: return .database(path: path, why: error.message ?? "\(error)")
            }
        }
        if error is DecodingError { return .corrupt(path: path, why: "a stored value does not decode: \(error)") }
        return .database(path: path, why: "\(error)")
    }

    /// The journal's `format` and `schema_version`, or why the file is not a journal.
    static func checkFormat(_ db: Database, path: String) throws {
        guard try db.tableExists("journal_meta") else { throw JournalError.foreign(path: path, why: "no journal_meta table") }
        let format = try String.fetchOne(db, sql: "SELECT value FROM journal_meta WHERE key = ?", arguments: [JournalSchema.MetaKey.format])
        guard format == JournalSchema.format else {
            throw JournalError.foreign(path: path, why: "journal_meta names format \(format ?? "none")")
        }
        let version = try String.fetchOne(db, sql: "SELECT value FROM journal_meta WHERE key = ?",
                                          arguments: [JournalSchema.MetaKey.schemaVersion]).flatMap { Int($0) } ?? 0
        if version > JournalSchema.version { throw JournalError.newerSchema(path: path, version: version) }
    }
}

/// Byte and block counts in SQLite's signed 64-bit integers: stored by bit pattern, so that a
/// saturated total (2^64 − 1) reads back as itself.
extension UInt64 {
    var stored: Int64 { Int64(bitPattern: self) }
    init(stored: Int64) { self.init(bitPattern: stored) }
}
