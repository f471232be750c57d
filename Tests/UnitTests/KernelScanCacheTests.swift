import GuestMemory
import Introspection
@testable import LeakAnalysis
import Reachability
import Testing
import X86

/// Kernel scans through the frame cache over crafted kernel memory: each rescan reads only the
/// frames the write log names, and gives the verdicts a scan that reads everything gives.
@Suite struct KernelScanCacheTests {
    static let directMap: UInt64 = 0xFFFF_8880_0000_0000
    /// Two heap frames (0x800, 0x801) of small objects, and three frames (0x400...) of image data.
    static let heap = directMap + 0x80_0000
    static let data: UInt64 = 0xFFFF_FFFF_8200_0000
    static let rules = KernelLeakRules(minimumAge: 0, consecutiveScans: 1)

    /// Crafted memory, the frames written since the last scan, and two scanners over it: one with
    /// a frame cache, one that reads all it marks through every time.
    final class Guest {
        var crafted: CraftedKernelMemory
        var written: Set<UInt64> = []
        var cachedScanner = KernelLeakScanner(rules: KernelScanCacheTests.rules)
        var fullScanner = KernelLeakScanner(rules: KernelScanCacheTests.rules)
        let cache = FrameCandidateCache(window: .kernel)
        let objects: [KernelScanObject]
        let roots: KernelRootSet

        init() throws {
            crafted = try CraftedKernelMemory()
            try crafted.map(KernelScanCacheTests.data, to: 0x40_0000)
            // 16 objects of 64 bytes filling the first heap frame's first KiB, 8 of 128 bytes in the second.
            objects = (0..<16).map { KernelScanObject(address: KernelScanCacheTests.heap + $0 * 64, size: 64, allocatedAt: 0) }
                + (0..<8).map { KernelScanObject(address: KernelScanCacheTests.heap + 0x1000 + $0 * 128, size: 128, allocatedAt: 0) }
            var roots = KernelRootSet()
            // Exact image data, and the heap frames as conservative roots: less the objects, their
            // gaps are roots too, so ranges start and end inside frames.
            roots.ranges = [KernelRootRange(KernelScanCacheTests.data..<KernelScanCacheTests.data + 0x3000, .imageData),
                            KernelRootRange(KernelScanCacheTests.heap..<KernelScanCacheTests.heap + 0x2000, .kernelPage)]
            self.roots = roots
            // Noise everywhere: small integers and user addresses, never references.
            var random = DeterministicRandom(seed: 3)
            for slot: UInt64 in stride(from: 0, to: 0x3000, by: 8) {
                try put(random.next() % 2 == 0 ? random.next() % 4096 : 0x7FFF_0000_0000 | random.next() % 0x1000_0000,
                        at: KernelScanCacheTests.data + slot)
            }
            for slot: UInt64 in stride(from: 0, to: 0x2000, by: 8) { try put(random.next() % 1000, at: KernelScanCacheTests.heap + slot) }
        }

        func object(_ i: Int) -> UInt64 { objects[i].address }

        /// A first scan, after which the objects count as unchanged (an object seen for the first
        /// time on a written frame counts as written: its contents are roots in that scan).
        func settle() throws {
            let (cached, full) = try scan(now: 1)
            #expect(cached.verdicts == full.verdicts)
            #expect(cached.statistics.cache?.framesRead == 5 && cached.statistics.cache?.framesReused == 0)
        }

        /// A write the write log will report (as a guest write would be).
        func put(_ value: UInt64, at virtual: UInt64) throws {
            let physical = virtual >= KernelScanCacheTests.data ? try crafted.physical(virtual)
                : GuestPhysicalAddress(virtual - KernelScanCacheTests.directMap)
            try crafted.memory.store(value, at: physical)
            written.insert(physical.rawValue >> 12)
        }

        /// A write the write log misses (what the cache must never be given).
        func putUnlogged(_ value: UInt64, at virtual: UInt64) throws {
            try crafted.memory.store(value, at: GuestPhysicalAddress(virtual - KernelScanCacheTests.directMap))
        }

        /// One scan by each scanner, as `KernelLeakScanner.scan(view:)` makes it; `tellCache: false`
        /// withholds the written frames from the cached scanner.
        func scan(now: Double, tellCache: Bool = true) throws -> (cached: KernelScanResult, full: KernelScanResult) {
            let space = try crafted.view().space
            let toCache: Set<UInt64> = tellCache ? written : []
            KernelLeakScanner.prepare(cache, written: toCache, memoryBytes: .max)
            var cachedMemory = KernelMemorySource(space: space, directMapBase: KernelScanCacheTests.directMap, cache: cache)
            var cached = cachedScanner.scan(objects: objects, roots: roots, memory: &cachedMemory, now: now, writtenFrames: toCache)
            cached.statistics.cache = KernelLeakScanner.finish(cache)
            var fullMemory = KernelMemorySource(space: space, directMapBase: KernelScanCacheTests.directMap)
            let full = fullScanner.scan(objects: objects, roots: roots, memory: &fullMemory, now: now, writtenFrames: written)
            written = []
            return (cached, full)
        }
    }

    func classes(_ r: KernelScanResult) -> [ReachabilityClass?] { r.verdicts.map(\.reachability) }

    @Test func aCachedRescanGivesTheVerdictsOfAFullScanAndReadsOnlyWrittenFrames() throws {
        let g = try Guest()
        try g.put(g.object(0), at: Self.data)                       // o0 reachable from data
        try g.put(g.object(1) + 16, at: g.object(0) + 8)            // o1 through an interior pointer in o0
        try g.put(g.object(3), at: g.object(2) + 24)                // o2 → o3: a dropped chain
        try g.put(g.object(4) + 63, at: Self.heap + 0x1800)         // o4 from a gap between objects (a conservative root)
        try g.put(g.object(5), at: g.object(16) + 120)              // o16 → o5 (last word of o16)
        try g.put(g.object(6), at: g.object(7) - 8)                 // the last word of o6 points to o6: a self reference
        try g.settle()
        // Nothing written: nothing read.
        var (cached, full) = try g.scan(now: 11)
        #expect(cached.verdicts == full.verdicts && cached.complete && full.complete)
        #expect(cached.statistics.cache?.framesRead == 0 && cached.statistics.cache?.framesReused == 5)
        #expect(classes(full)[0...6] == [.reachable, .reachable, .directLeak, .indirectLeak, .reachable, .indirectLeak, .directLeak])
        #expect(classes(full)[16] == .directLeak)

        // Each change reaches the verdicts through exactly the frame written.
        try g.put(g.object(2), at: Self.data + 0x2FF8)               // the chain is referenced now (the data's last word)
        (cached, full) = try g.scan(now: 12)
        #expect(cached.verdicts == full.verdicts && classes(cached)[2...3] == [.reachable, .reachable])
        #expect(cached.statistics.cache?.framesRead == 1 && cached.statistics.cache?.framesReused == 4)

        try g.put(0, at: g.object(0) + 8)                            // o1 dropped (o0's frame written)
        try g.put(0, at: Self.heap + 0x1800)                         // o4 dropped
        (cached, full) = try g.scan(now: 13)
        #expect(cached.verdicts == full.verdicts && classes(cached)[1] == .directLeak && classes(cached)[4] == .directLeak)
        #expect(cached.statistics.cache?.framesRead == 2 && cached.statistics.cache?.framesReused == 3)
        (cached, full) = try g.scan(now: 14)
        #expect(cached.verdicts == full.verdicts && cached.verdicts.contains { $0.reported })
    }

    @Test func aFrameWrittenBetweenScansIsReadAgain() throws {
        let g = try Guest()
        try g.put(g.object(9), at: g.object(8))
        try g.settle()
        var (cached, full) = try g.scan(now: 10)
        #expect(classes(cached)[8...9] == [.directLeak, .indirectLeak] && cached.verdicts == full.verdicts)
        // A write the cache is not told of is not seen: the dirty log is its only source of truth.
        try g.putUnlogged(g.object(8), at: Self.heap + 0x1FF8)
        g.written.insert(0x801)  // (the full scanner's written rule sees it)
        (cached, full) = try g.scan(now: 11, tellCache: false)
        #expect(classes(cached)[8] == .directLeak && classes(full)[8] == .reachable)
        // Once the log names the frame, it is read again and the verdicts agree.
        g.written.insert(0x801)
        (cached, full) = try g.scan(now: 12)
        #expect(classes(cached) == classes(full) && classes(cached)[8...9] == [.reachable, .reachable])
        #expect(cached.statistics.cache?.framesRead == 1)
    }

    @Test func withoutAWriteLogEveryScanReadsEverything() throws {
        let g = try Guest()
        try g.settle()
        #expect(g.cache.cachedFrames == 5)
        KernelLeakScanner.prepare(g.cache, written: nil, memoryBytes: .max)
        #expect(g.cache.cachedFrames == 0 && g.cache.storedBytes == 0)
        _ = try g.scan(now: 11)
        // A cache over half the memory a scan may use starts over too.
        KernelLeakScanner.prepare(g.cache, written: [], memoryBytes: 2 * g.cache.storedBytes - 1)
        #expect(g.cache.cachedFrames == 0)
        // Frames no scan uses any more are let go after the next scan.
        _ = try g.scan(now: 12)
        _ = try g.cache.candidates(frame: 0x900, memory: g.crafted.memory)
        #expect(g.cache.cachedFrames == 6)
        _ = try g.scan(now: 13)
        #expect(g.cache.cachedFrames == 6)  // used since the last scan
        _ = try g.scan(now: 14)
        #expect(g.cache.cachedFrames == 5)
    }
}
