import Foundation
import LeakJournal
import Monitor
import Synchronization
import Testing

/// The session's journal: its path said at start, a write failure said once and never thrown,
/// and a foreign file at the path refused without stopping anything.
@Suite struct JournalRecordingTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
        var say: @Sendable (String) -> Void { { line in self.lines.withLock { $0.append(line) } } }
    }

    @Test func writeFailuresAreSaidOnceAndTrackingGoesOn() throws {
        let path = JournalFixtures.temporaryPath()
        let lines = Lines()
        let recording = try #require(JournalRecording.open(path: path, identity: JournalFixtures.identity, say: lines.say))
        #expect(lines.all == ["journal: \(path)"])
        let report = JournalFixtures.report(seconds: 1, sites: [.init(pc: 0x402000, sizes: [8])])
        recording.record(report, reason: "every 1 s")
        recording.close()
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"), "closed: one file")
        // Closed: every later write fails; said once.
        recording.record(report, reason: "every 1 s")
        recording.record(report, reason: "final", final: true)
        #expect(lines.all.filter { $0.hasPrefix("cannot write to the journal") }.count == 1, "\(lines.all)")
        #expect(recording.summary().hasPrefix("journal: 1 sample(s) written"))
        #expect(try JournalReader(path: path).samples().count == 1)
    }

    @Test func exitSamplesThatChangeNothingAreSkipped() throws {
        let path = JournalFixtures.temporaryPath()
        let recording = try #require(JournalRecording.open(path: path, identity: JournalFixtures.identity, say: Lines().say))
        let one = JournalFixtures.report(seconds: 1, sites: [.init(pc: 0x402000, sizes: [8])])
        let same = JournalFixtures.report(seconds: 2, sites: [.init(pc: 0x402000, sizes: [8])])
        let more = JournalFixtures.report(seconds: 3, sites: [.init(pc: 0x402000, sizes: [8, 8])])
        recording.record(one, reason: "every 1 s")
        recording.record(same, reason: "process exit", unlessUnchanged: true)
        recording.record(more, reason: "process exit", unlessUnchanged: true)
        recording.record(more, reason: "every 1 s")
        #expect(try JournalReader(path: path).samples().map(\.seconds) == [1, 3, 3], "periodic samples are always written")
    }

    @Test func aForeignFileIsNotOpenedAndSaysWhy() throws {
        let path = JournalFixtures.temporaryPath("precious.txt")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
        let lines = Lines()
        #expect(JournalRecording.open(path: path, identity: JournalFixtures.identity, say: lines.say) == nil)
        #expect(lines.all.count == 1 && lines.all[0].hasPrefix("cannot open the journal"), "\(lines.all)")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
    }
}
