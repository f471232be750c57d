import GRDB

/// The journal's tables, as GRDB migrations (docs/journal.md describes them). A journal names
/// itself in `journal_meta` (`format` = `leakvisor-journal`) so that a reader refuses other files.
public enum JournalSchema {
    public static let format = "leakvisor-journal"
    /// The newest migration's number; a journal with a larger `schema_version` is refused.
    public static let version = 1

    /// Keys of `journal_meta`.
    enum MetaKey {
        static let format = "format"
        static let schemaVersion = "schema_version"
        static let identity = "identity"
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "journal_meta") { t in
                t.primaryKey("key", .text)
                t.column("value", .text).notNull()
            }
            // One row per kept sample: the totals, and the whole report as JSON.
            try db.create(table: "samples") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("seconds", .double).notNull()
                t.column("unix_time", .double).notNull()
                t.column("reason", .text).notNull()
                t.column("final", .boolean).notNull().defaults(to: false)
                t.column("outstanding_blocks", .integer).notNull()
                t.column("outstanding_bytes", .integer).notNull()
                t.column("leaked_blocks", .integer).notNull()
                t.column("leaked_bytes", .integer).notNull()
                t.column("report", .blob).notNull()
            }
            try db.create(index: "samples_by_time", on: "samples", columns: ["seconds"])
            // Allocation sites by a stable key: allocator function and the frames' symbols.
            try db.create(table: "sites") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("key", .text).notNull().unique()
                t.column("function", .text).notNull()
                t.column("frames", .blob).notNull()
            }
            // Address spaces: pid and command, when first seen and when seen exited.
            try db.create(table: "processes") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("key", .text).notNull().unique()
                t.column("pid", .integer)
                t.column("command", .text)
                t.column("executable", .text)
                t.column("first_seconds", .double).notNull()
                t.column("last_seconds", .double).notNull()
                t.column("exit_seconds", .double)
                t.column("state", .text).notNull()
            }
            try db.create(table: "process_samples") { t in
                t.column("sample_id", .integer).notNull().references("samples", onDelete: .cascade)
                t.column("process_id", .integer).notNull().references("processes", onDelete: .cascade)
                t.column("blocks", .integer).notNull()
                t.column("bytes", .integer).notNull()
                t.column("leaked_blocks", .integer).notNull()
                t.column("leaked_bytes", .integer).notNull()
                t.primaryKey(["sample_id", "process_id"])
            }
            try db.create(table: "site_samples") { t in
                t.column("sample_id", .integer).notNull().references("samples", onDelete: .cascade)
                t.column("process_id", .integer).notNull().references("processes", onDelete: .cascade)
                t.column("site_id", .integer).notNull().references("sites", onDelete: .cascade)
                t.column("blocks", .integer).notNull()
                t.column("bytes", .integer).notNull()
                t.column("leaked_blocks", .integer).notNull()
                t.column("leaked_bytes", .integer).notNull()
                t.primaryKey(["sample_id", "process_id", "site_id"])
            }
            try db.create(index: "site_samples_by_site", on: "site_samples", columns: ["site_id"])
            // Findings (invalid or mismatched releases, refused blocks), each once.
            try db.create(table: "findings") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("process_id", .integer).notNull().references("processes", onDelete: .cascade)
                t.column("kind", .text).notNull()
                t.column("address", .integer).notNull()
                t.column("seconds", .double).notNull()
                t.column("released_by", .text).notNull()
                t.column("frames", .blob).notNull()
                t.uniqueKey(["process_id", "kind", "address", "seconds"])
            }
        }
        return migrator
    }
}
