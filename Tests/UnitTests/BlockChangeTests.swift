import AllocationLedger
import Reachability
import Testing
import X86

/// What a rescan takes from the ledger instead of every live block: the starts changed since it
/// last took them (`AllocationLedger.changes`), applied to its kept index in one merge
/// (`HeapBlockIndex.applying`).
@Suite struct BlockChangeTests {
    let space = PageTableRoot(cr3: 0x1234_5000)

    func allocate(_ ledger: AllocationLedger, _ address: UInt64, size: UInt64 = 32, time: UInt64) {
        ledger.allocate(in: space, address: address, size: size, function: .malloc, stack: [0x40_1000], thread: 1, time: time)
    }

    func free(_ ledger: AllocationLedger, _ address: UInt64) {
        _ = ledger.release(in: space, address: address, function: .free, stack: [0x40_1000], thread: 1, time: 9, strict: true)
    }

    @Test func theChangeLogGivesEachChangedStartAsItIsNow() throws {
        let ledger = AllocationLedger()
        allocate(ledger, 0x1000, time: 1)
        allocate(ledger, 0x2000, time: 2)
        let (blocks, version) = ledger.liveBlocksAndVersion(of: space)
        #expect(blocks.count == 2)
        allocate(ledger, 0x3000, time: 3)            // new
        free(ledger, 0x1000)                         // gone
        allocate(ledger, 0x4000, time: 4)            // came and went
        free(ledger, 0x4000)
        let changes = try #require(ledger.changes(of: space, since: version))
        #expect(changes.version > version)
        #expect(Set(changes.blocks.keys) == [0x1000, 0x3000, 0x4000])
        #expect(changes.blocks[0x3000]??.time == 3)
        #expect(changes.blocks[0x1000]! == nil && changes.blocks[0x4000]! == nil)
        // The log starts again at the version it returned; an older one is not covered.
        #expect(ledger.changes(of: space, since: version) == nil)
        let none = try #require(ledger.changes(of: space, since: ledger.liveBlocksAndVersion(of: space).version))
        #expect(none.blocks.isEmpty)
    }

    @Test func aLogThatNeverStartedOrWhoseSpaceEndedCoversNothing() {
        let ledger = AllocationLedger()
        allocate(ledger, 0x1000, time: 1)
        #expect(ledger.changes(of: space, since: 0) == nil)
        let version = ledger.liveBlocksAndVersion(of: space).version
        ledger.retire(space, as: .exited, time: 5)
        #expect(ledger.changes(of: space, since: version) == nil)
    }

    @Test func changesApplyToAnIndexInOneMerge() throws {
        let index = HeapBlockIndex(blocks: [(0x1000, 16), (0x2000, 16), (0x3000, 16), (0x4000, 16)])
        let times: [UInt64] = [1, 2, 3, 4]
        let changed: [UInt64: (size: UInt64, time: UInt64)?] = [
            0x2000: nil,                              // freed
            0x2800: (size: 8, time: 5),               // new, between two kept blocks
            0x3000: (size: 24, time: 6),              // freed and allocated again at the same start
            0x4000: (size: 16, time: 4),              // the same block: no change
            0x5000: nil,                              // came and went
        ]
        let applied = try #require(index.applying(changed, times: times))
        #expect(applied.index.starts == [0x1000, 0x2800, 0x3000, 0x4000])
        #expect(applied.index.sizes == [16, 8, 24, 16])
        #expect(applied.times == [1, 5, 6, 4])
        #expect(applied.survivors == [0, -1, -1, 3])
        #expect(applied.added == [1, 2])
        // The merge answers as an index built from scratch does (the allocator boundary included).
        let rebuilt = HeapBlockIndex(blocks: [(0x1000, 16), (0x2800, 8), (0x3000, 24), (0x4000, 16)])
        for value in stride(from: UInt64(0xFF0), to: 0x4020, by: 8) {
            #expect(applied.index.block(containing: value) == rebuilt.block(containing: value))
        }
        #expect(index.applying([0x4000: (size: 16, time: 4), 0x9000: nil], times: times) == nil)
    }
}
