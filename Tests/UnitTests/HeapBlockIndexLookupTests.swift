@testable import Reachability
import Testing

/// `HeapBlockIndex.block(containing:)` searches its sampled starts first, then one stride of
/// starts: it answers what a search of every block answers, at every kind of address (below,
/// between, inside, at a start, at a stride's edge, past the end), for indexes built at once and
/// by merging changes.
@Suite struct HeapBlockIndexLookupTests {
    /// Every block's answer by a linear search: the last block starting at or below the value.
    static func linear(_ index: HeapBlockIndex, _ value: UInt64) -> HeapBlockIndex.Hit? {
        guard let i = index.starts.lastIndex(where: { $0 <= value }) else { return nil }
        if value == index.starts[i] { return .init(block: i, atStart: true) }
        guard value &- index.starts[i] < index.sizes[i], value != index.boundaries[i] else { return nil }
        return .init(block: i, atStart: false)
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func sampledLookupsAnswerAsALinearSearch(seed: UInt64) throws {
        var random = DeterministicRandom(seed: seed)
        for count in [0, 1, 63, 64, 65, 200, 1000] {
            var blocks: [(start: UInt64, size: UInt64)] = []
            var address: UInt64 = 0x10000 + random.next() % 4096 * 16
            for _ in 0..<count {
                let sizes: [UInt64] = [0, 8, 24, 40, 100, 4096]
                let size = sizes[Int(random.next() % 6)]
                blocks.append((address, size))
                // Now and then a gap of a few pages.
                let gap: UInt64 = random.next() % 8 == 0 ? random.next() % 3 * 4096 : 0
                address += size + 16 + gap
            }
            let index = HeapBlockIndex(blocks: blocks.shuffled(using: &random))
            #expect(index.samples.count == (count + 63) / 64)
            var probes: [UInt64] = [0, 0xFFFF, UInt64.max, address, address + 8]
            for (start, size) in blocks {
                probes += [start &- 8, start, start + 8, start + size / 2, start + size, start + size + 8]
            }
            for _ in 0..<200 { probes.append(0x10000 + random.next() % (address - 0x10000 + 1)) }
            for value in probes {
                #expect(index.block(containing: value) == Self.linear(index, value), "\(count) blocks, 0x\(String(value, radix: 16))")
            }
            // Merged changes: every second block gone, a few new ones past the end.
            var times = [UInt64](repeating: 1, count: count)
            var changed: [UInt64: (size: UInt64, time: UInt64)?] = [:]
            for (k, start) in index.starts.enumerated() where k % 2 == 0 { changed[start] = .some(nil) }
            for k in 0..<UInt64(70) { changed[address + 0x100000 + 64 * k] = (size: 32, time: 2) }
            times = Array(times.prefix(index.count))
            let merged = try #require(index.applying(changed, times: times)).index
            #expect(merged.samples.count == (merged.count + 63) / 64)
            for value in probes + [address + 0x100000, address + 0x100000 + 64 * 69 + 8] {
                #expect(merged.block(containing: value) == Self.linear(merged, value), "merged, 0x\(String(value, radix: 16))")
            }
        }
    }
}
