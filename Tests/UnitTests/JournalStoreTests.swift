import Foundation
import GRDB
import LeakAnalysis
import LeakJournal
import Testing

/// The journal on disk: what is written reads back equal, bad files are refused with a typed
/// error, and a long soak keeps the file and its rows bounded.
@Suite struct JournalStoreTests {
    typealias Site = JournalFixtures.Site

    @Test func samplesReadBackAsWritten() throws {
        let path = JournalFixtures.temporaryPath()
        let writer = try JournalWriter(creating: path, identity: JournalFixtures.identity)
        let first = JournalFixtures.report(seconds: 1, sites: [Site(pc: 0x402000, sizes: [32])])
        let second = JournalFixtures.report(seconds: 2, sites: [Site(pc: 0x402000, sizes: [32, 32]),
                                                                Site(pc: 0x403000, sizes: [100], leaked: true)])
        let last = JournalFixtures.report(seconds: 3, sites: [Site(pc: 0x402000, sizes: [32, 32, 32]),
                                                              Site(pc: 0x403000, sizes: [100], leaked: true)], state: true)
        try writer.record(first, reason: "every 1 s")
        try writer.record(second, reason: "every 1 s")
        try writer.record(last, reason: "final", final: true)

        let reader = try JournalReader(path: path)
        #expect(try reader.identity() == JournalFixtures.identity)
        let samples = try reader.samples()
        #expect(samples.map(\.seconds) == [1, 2, 3])
        #expect(samples.map(\.final) == [false, false, true])
        #expect(samples[2].totals == SiteTotals(blocks: 4, bytes: 196, leakedBlocks: 1, leakedBytes: 100))
        #expect(try reader.report(of: samples[1]) == second)
        #expect(try reader.report(of: samples[2]) == last)
        #expect(try reader.sample(atOrBefore: 2.5).id == samples[1].id)
        #expect(try reader.sample(atOrBefore: nil).id == samples[2].id)
        #expect(throws: JournalError.noSample(atOrBefore: 0.5)) { try reader.sample(atOrBefore: 0.5) }

        let totals = try reader.siteTotals(of: samples[2])
        #expect(totals[JournalFixtures.key(0x402000)] == SiteTotals(blocks: 3, bytes: 96))
        #expect(totals[JournalFixtures.key(0x403000)] == SiteTotals(blocks: 1, bytes: 100, leakedBlocks: 1, leakedBytes: 100))
        let lifetimes = try reader.processes()
        #expect(lifetimes.count == 1)
        #expect(lifetimes[0].pid == 42 && lifetimes[0].command == "prog" && lifetimes[0].firstSeconds == 1 && lifetimes[0].exitSeconds == 3)

        let diff = try SiteDiff.build(from: reader, from: 1, to: 3)
        #expect(diff.sites.map(\.siteKey) == [JournalFixtures.key(0x403000), JournalFixtures.key(0x402000)].map(\.siteKey))
        #expect(diff.sites[0].isNew && diff.sites[1].bytesDelta == 64 && diff.sites[1].blocksDelta == 2)
        #expect(diff.sites[1].frames.map(\.pc) == [0x401000, 0x402000])
    }

    @Test func theReportFromAJournalIsTodaysJSONWithAJournalKey() throws {
        let path = JournalFixtures.temporaryPath()
        let writer = try JournalWriter(creating: path, identity: JournalFixtures.identity)
        for k in 1...6 {
            try writer.record(JournalFixtures.report(seconds: Double(k) * 10, sites: [Site(pc: 0x402000, sizes: Array(repeating: 1024, count: k)),
                                                                                      Site(pc: 0x403000, sizes: [8])]), reason: "every 10 s")
        }
        let document = try JournalReport.build(from: try JournalReader(path: path), atOrBefore: nil)
        #expect(document.journal.growth.map(\.siteKey) == [JournalFixtures.key(0x402000).siteKey])
        #expect(abs(document.journal.growth[0].bytesPerHour - 1024.0 / 10 * 3600) < 1e-6)
        let json = try JSONEncoder().encode(document)
        #expect(try JSONDecoder().decode(LeakReport.self, from: json) == document.report)
        let object = try JSONSerialization.jsonObject(with: json) as? [String: Any]
        #expect(object?["journal"] != nil && object?["summary"] != nil && object?["processes"] != nil)
        let text = JournalText.render(document)
        #expect(text.contains("SUMMARY: LeakVisor: 6152 byte(s) outstanding in 7 allocation(s)"))
        #expect(text.contains("Growing at 368640 byte(s)/hour: 1024 -> 6144 byte(s) over 6 samples"))
    }

    @Test func missingForeignAndDamagedFilesAreRefused() throws {
        let missing = JournalFixtures.temporaryPath()
        #expect(throws: JournalError.missing(path: missing)) { try JournalReader(path: missing) }

        let text = JournalFixtures.temporaryPath("notes.txt")
        try Data(String(repeating: "not a database\n", count: 500).utf8).write(to: URL(fileURLWithPath: text))
        #expect { try JournalReader(path: text) } throws: { error in
            if case JournalError.corrupt = error { return true }
            return false
        }
        #expect(throws: JournalError.self) { try JournalWriter(creating: text, identity: JournalFixtures.identity) }
        #expect(try String(contentsOfFile: text, encoding: .utf8).hasPrefix("not a database"), "a foreign file is left alone")

        let other = JournalFixtures.temporaryPath("other.sqlite")
        try DatabaseQueue(path: other).write { try $0.execute(sql: "CREATE TABLE t (x); INSERT INTO t VALUES (1)") }
        #expect { try JournalReader(path: other) } throws: { error in
            if case JournalError.foreign = error { return true }
            return false
        }
        #expect(throws: JournalError.self) { try JournalWriter(creating: other, identity: JournalFixtures.identity) }

        // A journal cut in the middle (a disk error, a partial copy).
        let cut = JournalFixtures.temporaryPath()
        let writer = try JournalWriter(creating: cut, identity: JournalFixtures.identity)
        for k in 1...40 {
            try writer.record(JournalFixtures.report(seconds: Double(k), sites: [Site(pc: 0x402000, sizes: Array(repeating: 64, count: k))]),
                              reason: "every 1 s")
        }
        _ = try DatabaseQueue(path: cut).writeWithoutTransaction { try $0.checkpoint(.truncate) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: cut))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: cut))
        #expect(throws: JournalError.self) {
            let reader = try JournalReader(path: cut)
            for sample in try reader.samples() { _ = try reader.report(of: sample) }
        }
    }

    @Test func anExistingJournalIsReplaced() throws {
        let path = JournalFixtures.temporaryPath()
        try JournalWriter(creating: path, identity: JournalFixtures.identity)
            .record(JournalFixtures.report(seconds: 1, sites: [Site(pc: 0x402000, sizes: [1])]), reason: "x")
        _ = try JournalWriter(creating: path, identity: JournalFixtures.identity)
        #expect(try JournalReader(path: path).samples().isEmpty)
    }

    @Test func aLongSoakKeepsTheFileAndItsRowsBounded() throws {
        let path = JournalFixtures.temporaryPath()
        let writer = try JournalWriter(creating: path, identity: JournalFixtures.identity)
        let sites = (0..<20).map { UInt64(0x402000 + $0 * 0x40) }
        /// The database file's size once its WAL is checkpointed into it.
        func size() throws -> Int {
            _ = try DatabaseQueue(path: path).writeWithoutTransaction { try $0.checkpoint(.truncate) }
            return (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        }
        // A sample every 10 s for 8.3 hours; 20 sites growing by a block every 100 samples.
        var sizeAt500 = 0
        var writing = 0.0
        for k in 0..<3000 {
            let report = JournalFixtures.report(seconds: Double(k) * 10, sites: sites.map { Site(pc: $0, sizes: Array(repeating: 48, count: 1 + k / 100)) })
            let started = Date()
            try writer.record(report, reason: "every 10 s")
            writing += Date().timeIntervalSince(started)
            if k == 499 { sizeAt500 = try size() }
        }
        let perSample = writing / 3000
        let finalSize = try size()
        let reader = try JournalReader(path: path)
        let counts = try reader.rowCounts()
        let bound = 64 + 61 + 25 + 2
        print("journal soak: 3000 samples, \(counts["samples"] ?? 0) kept, \(counts["site_samples"] ?? 0) site rows,"
              + " \(finalSize / 1024) KiB (\(sizeAt500 / 1024) KiB after 500), "
              + String(format: "%.2f ms per sample written", perSample * 1000))
        #expect((counts["samples"] ?? .max) <= bound)
        #expect((counts["site_samples"] ?? .max) <= bound * sites.count)
        #expect((counts["process_samples"] ?? .max) <= bound)
        #expect(counts["sites"] == sites.count && counts["processes"] == 1)
        #expect(finalSize <= sizeAt500 * 2, "the file stops growing once thinning starts")
        #expect(try reader.samples().first?.seconds == 0)
    }
}
