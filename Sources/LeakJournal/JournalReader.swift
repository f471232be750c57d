import Foundation
import GRDB
import LeakAnalysis

/// One kept sample: when, why, and its totals.
public struct JournalSample: Sendable, Codable, Equatable {
    public var id: Int64
    /// Seconds since tracking started.
    public var seconds: Double
    public var unixTime: Double
    public var reason: String
    public var final: Bool
    public var totals: SiteTotals

    public init(id: Int64, seconds: Double, unixTime: Double, reason: String, final: Bool, totals: SiteTotals) {
        self.id = id
        self.seconds = seconds
        self.unixTime = unixTime
        self.reason = reason
        self.final = final
        self.totals = totals
    }
}

/// An allocation site of one program (command): the unit of diffs and growth rates.
public struct SiteOfProgram: Sendable, Codable, Hashable {
    public var command: String
    public var siteKey: String

    public init(command: String, siteKey: String) {
        self.command = command
        self.siteKey = siteKey
    }
}

/// What the journal knows of a site: its allocator function and symbolized frames.
public struct SiteDescription: Sendable, Codable, Equatable {
    public var function: String
    public var frames: [ReportFrame]
}

/// An address space's life as the samples saw it.
public struct ProcessLifetime: Sendable, Codable, Equatable {
    public var pid: Int32?
    public var command: String?
    public var executable: String?
    /// The first and the latest sample that listed it; the first sample that saw it exited.
    public var firstSeconds: Double
    public var lastSeconds: Double
    public var exitSeconds: Double?
    public var state: String
}

/// Reads a journal without a guest or a monitor, also while a monitor writes it, and after one
/// was killed (the committed samples are all there).
public final class JournalReader: Sendable {
    public let path: String
    let queue: DatabaseQueue

    /// Opens `path` read-only; refuses a missing file, a file that is not a LeakVisor journal, a
    /// damaged one, and one from a newer schema.
    public init(path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { throw JournalError.missing(path: path) }
        queue = try JournalDatabase.open(path, readonly: true)
        do {
            try queue.read { db in
                try JournalDatabase.checkFormat(db, path: path)
                let check = try String.fetchAll(db, sql: "PRAGMA quick_check")
                guard check == ["ok"] else { throw JournalError.corrupt(path: path, why: check.prefix(3).joined(separator: "; ")) }
            }
        } catch {
            throw JournalDatabase.mapped(error, path: path)
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try queue.read(body)
        } catch {
            throw JournalDatabase.mapped(error, path: path)
        }
    }

    public func identity() throws -> RunIdentity {
        try read { db in
            guard let text = try String.fetchOne(db, sql: "SELECT value FROM journal_meta WHERE key = ?",
                                                 arguments: [JournalSchema.MetaKey.identity]) else {
                throw JournalError.corrupt(path: path, why: "no run identity")
            }
            return try JSONDecoder().decode(RunIdentity.self, from: Data(text.utf8))
        }
    }

    /// Every kept sample, oldest first.
    public func samples() throws -> [JournalSample] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT id, seconds, unix_time, reason, final, outstanding_blocks, outstanding_bytes, leaked_blocks, leaked_bytes
                FROM samples ORDER BY seconds, id
                """).map { row in
                JournalSample(id: row["id"], seconds: row["seconds"], unixTime: row["unix_time"], reason: row["reason"],
                              final: row["final"],
                              totals: SiteTotals(blocks: row["outstanding_blocks"], bytes: UInt64(stored: row["outstanding_bytes"]),
                                                 leakedBlocks: row["leaked_blocks"], leakedBytes: UInt64(stored: row["leaked_bytes"])))
            }
        }
    }

    /// The latest sample at or before `seconds` (nil: the latest of all).
    public func sample(atOrBefore seconds: Double?) throws -> JournalSample {
        let all = try samples()
        guard !all.isEmpty else { throw JournalError.empty(path: path) }
        guard let seconds else { return all[all.count - 1] }
        guard let found = all.last(where: { $0.seconds <= seconds }) else { throw JournalError.noSample(atOrBefore: seconds) }
        return found
    }

    /// The report stored with a sample.
    public func report(of sample: JournalSample) throws -> LeakReport {
        try read { db in
            guard let data = try Data.fetchOne(db, sql: "SELECT report FROM samples WHERE id = ?", arguments: [sample.id]) else {
                throw JournalError.corrupt(path: path, why: "sample \(sample.id) has no report")
            }
            return try JSONDecoder().decode(LeakReport.self, from: data)
        }
    }

    /// Per program and site, the totals of one sample (summed over the program's processes).
    public func siteTotals(of sample: JournalSample) throws -> [SiteOfProgram: SiteTotals] {
        try series(where: "s.sample_id = ?", sample.id).mapValues { $0.first?.totals ?? SiteTotals() }
    }

    /// Per program and site, its totals at every kept sample up to and including `sample`, oldest
    /// first (samples where the site had no block are absent).
    public func siteSeries(through sample: JournalSample) throws -> [SiteOfProgram: [(seconds: Double, totals: SiteTotals)]] {
        try series(where: "m.seconds <= ?", sample.seconds)
    }

    func series(where condition: String, _ argument: any DatabaseValueConvertible)
        throws -> [SiteOfProgram: [(seconds: Double, totals: SiteTotals)]] {
        try read { db in
            var result: [SiteOfProgram: [(seconds: Double, totals: SiteTotals)]] = [:]
            let rows = try Row.fetchCursor(db, sql: """
                SELECT m.id AS sample, m.seconds AS seconds, COALESCE(p.command, '?') AS command, t.key AS site,
                       s.blocks AS blocks, s.bytes AS bytes, s.leaked_blocks AS leaked_blocks, s.leaked_bytes AS leaked_bytes
                FROM site_samples s JOIN samples m ON m.id = s.sample_id JOIN processes p ON p.id = s.process_id
                JOIN sites t ON t.id = s.site_id WHERE \(condition) ORDER BY m.seconds, m.id
                """, arguments: [argument])
            var lastSample: [SiteOfProgram: Int64] = [:]
            while let row = try rows.next() {
                let key = SiteOfProgram(command: row["command"], siteKey: row["site"])
                let sampleID: Int64 = row["sample"]
                let totals = SiteTotals(blocks: row["blocks"], bytes: UInt64(stored: row["bytes"]),
                                        leakedBlocks: row["leaked_blocks"], leakedBytes: UInt64(stored: row["leaked_bytes"]))
                // Several processes of one program in a sample: one point, summed.
                if lastSample[key] == sampleID, var points = result[key], !points.isEmpty {
                    points[points.count - 1].totals += totals
                    result[key] = points
                } else {
                    result[key, default: []].append((row["seconds"], totals))
                    lastSample[key] = sampleID
                }
            }
            return result
        }
    }

    /// The function and frames of every site named in `keys`.
    public func describe(_ keys: some Sequence<String>) throws -> [String: SiteDescription] {
        let wanted = Set(keys)
        return try read { db in
            var result: [String: SiteDescription] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT key, function, frames FROM sites") {
                let key: String = row["key"]
                guard wanted.contains(key) else { continue }
                let frames = try JSONDecoder().decode([ReportFrame].self, from: row["frames"] as Data)
                result[key] = SiteDescription(function: row["function"], frames: frames)
            }
            return result
        }
    }

    /// Every address space the samples listed, in order of first sight.
    public func processes() throws -> [ProcessLifetime] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT pid, command, executable, first_seconds, last_seconds, exit_seconds, state FROM processes ORDER BY first_seconds, id
                """).map {
                ProcessLifetime(pid: $0["pid"], command: $0["command"], executable: $0["executable"], firstSeconds: $0["first_seconds"],
                                lastSeconds: $0["last_seconds"], exitSeconds: $0["exit_seconds"], state: $0["state"])
            }
        }
    }

    /// Row counts of the journal's tables (for bounds and diagnostics).
    public func rowCounts() throws -> [String: Int] {
        try read { db in
            var counts: [String: Int] = [:]
            for table in ["samples", "sites", "processes", "process_samples", "site_samples", "findings"] {
                counts[table] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0
            }
            return counts
        }
    }
}
