import Foundation
import GRDB
import LeakAnalysis

/// Writes a journal as tracking goes: one transaction per sample (the report and its rows, then
/// thinning), so a reader, or the monitor's successor after a `kill -9`, sees whole samples only.
public final class JournalWriter: Sendable {
    public let path: String
    public let thinning: SampleThinning
    let queue: DatabaseQueue
    /// Findings kept at most (the rest are still in each sample's report).
    static let findingsLimit = 10_000

    /// Creates the journal at `path`. A LeakVisor journal already there is replaced; any other file
    /// is refused (`JournalError.foreign`), so a mistyped path never overwrites someone's data.
    public init(creating path: String, identity: RunIdentity, thinning: SampleThinning = SampleThinning()) throws {
        self.path = path
        self.thinning = thinning
        if FileManager.default.fileExists(atPath: path) {
            _ = try JournalReader(path: path)
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        queue = try JournalDatabase.open(path, readonly: false)
        do {
            try JournalSchema.migrator.migrate(queue)
            let encoded = String(decoding: try JSONEncoder().encode(identity), as: UTF8.self)
            try queue.write { db in
                for (key, value) in [(JournalSchema.MetaKey.format, JournalSchema.format),
                                     (JournalSchema.MetaKey.schemaVersion, String(JournalSchema.version)),
                                     (JournalSchema.MetaKey.identity, encoded)] {
                    try db.execute(sql: "INSERT OR REPLACE INTO journal_meta (key, value) VALUES (?, ?)", arguments: [key, value])
                }
            }
        } catch {
            throw JournalDatabase.mapped(error, path: path)
        }
    }

    /// Appends one sample: the report (JSON), per-process and per-site totals, process lifetimes and
    /// new findings, then drops the samples `thinning` no longer keeps. Returns the sample's id.
    @discardableResult
    public func record(_ report: LeakReport, reason: String, final: Bool = false,
                       unixTime: Double = Date().timeIntervalSince1970) throws -> Int64 {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let json = try encoder.encode(report)
            let rows = SampleRows(report)
            return try queue.write { db in
                try db.execute(sql: """
                    INSERT INTO samples (seconds, unix_time, reason, final, outstanding_blocks, outstanding_bytes,
                                         leaked_blocks, leaked_bytes, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [report.seconds, unixTime, reason, final, rows.total.blocks, rows.total.bytes.stored,
                                     rows.total.leakedBlocks, rows.total.leakedBytes.stored, json])
                let sample = db.lastInsertedRowID
                for process in rows.processes {
                    let processID = try Self.upsert(process, seconds: report.seconds, db)
                    try Self.insertTotals(process.totals, table: "process_samples", ids: [sample, processID], db)
                    for (key, site) in process.sites {
                        let siteID = try Self.siteID(key: key, site, db)
                        try Self.insertTotals(site.totals, table: "site_samples", ids: [sample, processID, siteID], db)
                    }
                    try Self.insertFindings(process.report.findings, processID: processID, db)
                }
                try thin(db)
                return sample
            }
        } catch {
            throw JournalDatabase.mapped(error, path: path)
        }
    }

    static func upsert(_ process: SampleRows.Process, seconds: Double, _ db: Database) throws -> Int64 {
        let state = process.report.state.rawValue
        let exited: Double? = process.report.state == .live ? nil : seconds
        if let id = try Int64.fetchOne(db, sql: "SELECT id FROM processes WHERE key = ?", arguments: [process.key]) {
            try db.execute(sql: """
                UPDATE processes SET last_seconds = ?, state = ?, exit_seconds = COALESCE(exit_seconds, ?) WHERE id = ?
                """, arguments: [seconds, state, exited, id])
            return id
        }
        try db.execute(sql: """
            INSERT INTO processes (key, pid, command, executable, first_seconds, last_seconds, exit_seconds, state)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [process.key, process.report.pid, process.report.command, process.report.executable,
                             seconds, seconds, exited, state])
        return db.lastInsertedRowID
    }

    static func siteID(key: String, _ site: SampleRows.Site, _ db: Database) throws -> Int64 {
        if let id = try Int64.fetchOne(db, sql: "SELECT id FROM sites WHERE key = ?", arguments: [key]) { return id }
        try db.execute(sql: "INSERT INTO sites (key, function, frames) VALUES (?, ?, ?)",
                       arguments: [key, site.function, try JSONEncoder().encode(site.frames)])
        return db.lastInsertedRowID
    }

    static func insertTotals(_ totals: SiteTotals, table: String, ids: [Int64], _ db: Database) throws {
        let columns = table == "site_samples" ? "sample_id, process_id, site_id" : "sample_id, process_id"
        let marks = Array(repeating: "?", count: ids.count + 4).joined(separator: ", ")
        try db.execute(sql: "INSERT INTO \(table) (\(columns), blocks, bytes, leaked_blocks, leaked_bytes) VALUES (\(marks))",
                       arguments: StatementArguments(ids.map { $0 as (any DatabaseValueConvertible) }
                                                     + [totals.blocks, totals.bytes.stored, totals.leakedBlocks, totals.leakedBytes.stored]))
    }

    static func insertFindings(_ findings: [FindingReport], processID: Int64, _ db: Database) throws {
        guard !findings.isEmpty, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM findings") ?? 0 < findingsLimit else { return }
        for finding in findings {
            try db.execute(sql: """
                INSERT OR IGNORE INTO findings (process_id, kind, address, seconds, released_by, frames) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [processID, finding.kind.rawValue, finding.address.stored, finding.seconds,
                                 finding.releasedBy.rawValue, try JSONEncoder().encode(finding.frames)])
        }
    }

    /// Folds the WAL into the database file and closes it: a journal closed this way is one file.
    /// (A journal whose monitor died keeps its `-wal` file; the next reader replays it.)
    public func close() throws {
        do {
            _ = try queue.writeWithoutTransaction { try $0.checkpoint(.truncate) }
            try queue.close()
        } catch {
            throw JournalDatabase.mapped(error, path: path)
        }
    }

    /// Deletes the samples the thinning policy drops (their rows go with them).
    func thin(_ db: Database) throws {
        let samples = try Row.fetchAll(db, sql: "SELECT id, seconds, final FROM samples").map {
            SampleThinning.Sample(id: $0["id"], seconds: $0["seconds"], final: $0["final"])
        }
        let dropped = thinning.dropped(from: samples)
        guard !dropped.isEmpty else { return }
        try db.execute(sql: "DELETE FROM samples WHERE id IN (\(dropped.map(String.init).joined(separator: ",")))")
    }
}
