@testable import leakvisor
import AllocationTracing
import Foundation
import Testing

/// The journal of calls a libvirt attach writes before each trampoline: the newest whole slot is
/// read back, a write cut short or a corrupt slot leaves the one before, garbage gives nothing.
struct CallJournalFileTests {
    static func calls(_ n: Int) -> CallsInFlight {
        CallsInFlight(returns: (0..<UInt64(n)).map { (i: UInt64) -> CallsInFlight.Return in
            let task: UInt64 = 0xFFFF_8880_0300_0000 + i * 0x4000
            return CallsInFlight.Return(root: 0x1000 * (i + 1), slot: 0x7ffe_0000 + i * 8, returnAddress: 0x40_1000 + i,
                                        fsBase: 0x7f00_0000_0740 + i, task: task)
        })
    }

    static func path() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("lv-calls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    }

    @Test func theNewestWriteIsReadBack() throws {
        let path = Self.path()
        defer { unlink(path) }
        let file = try CallJournalFile(path: path)
        #expect(CallJournalFile.read(path: path) == nil)
        for n in [1, 3, 0, 2] { try file.write(Self.calls(n)) }
        #expect(CallJournalFile.read(path: path) == Self.calls(2))
    }

    @Test func aWriteCutShortLeavesTheOneBefore() throws {
        let path = Self.path()
        defer { unlink(path) }
        let file = try CallJournalFile(path: path)
        try file.write(Self.calls(2))
        try file.write(Self.calls(3))
        // The newest slot (sequence 2, at offset 0) loses its last bytes, as a killed write would.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let length = CallJournalFile.headerSize + 3 * CallJournalFile.entrySize + CallJournalFile.checksumSize
        for i in (length - 10)..<length { bytes[i] = 0 }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(CallJournalFile.read(path: path) == Self.calls(2))
    }

    /// After a write that failed the journal is emptied: no older slot may outlive it, since a
    /// recovery takes the journal's word over the record's.
    @Test func anInvalidatedJournalHoldsNothing() throws {
        let path = Self.path()
        defer { unlink(path) }
        let file = try CallJournalFile(path: path)
        try file.write(Self.calls(2))
        try file.write(Self.calls(3))
        file.invalidate()
        #expect(CallJournalFile.read(path: path) == nil)
        try file.write(Self.calls(1))
        #expect(CallJournalFile.read(path: path) == Self.calls(1))
    }

    @Test func hostileBytesGiveNothing() throws {
        let path = Self.path()
        defer { unlink(path) }
        var header = CallJournalFile.encode(Self.calls(1), sequence: 7)
        header[12] = 0xFF; header[13] = 0xFF; header[14] = 0xFF; header[15] = 0x7F   // a huge count
        for bytes in [[], [UInt8](repeating: 0xAB, count: 200), header, Array(CallJournalFile.encode(Self.calls(4), sequence: 1).dropLast(3))] {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            #expect(CallJournalFile.read(path: path) == nil)
        }
    }

    @Test func moreCallsThanASlotHoldsAreRefused() throws {
        let path = Self.path()
        defer { unlink(path) }
        let file = try CallJournalFile(path: path)
        #expect(throws: (any Error).self) { try file.write(Self.calls(CallJournalFile.capacity + 1)) }
        try file.write(Self.calls(CallJournalFile.capacity))
        #expect(CallJournalFile.read(path: path)?.returns.count == CallJournalFile.capacity)
    }
}
