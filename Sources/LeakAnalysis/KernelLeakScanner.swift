import Foundation
import Introspection
import Reachability

/// kmemleak's algorithm from outside the guest, over a list of live kernel objects given by the
/// caller: roots of the kernel at a pause (`KernelView.kernelRoots`), conservative marking where
/// any pointer into an object references it, direct and indirect leaks, and kmemleak's rules
/// against transient false positives (minimum age, N consecutive unreferenced scans, not written
/// since the last scan). Keeps per-object state between scans, keyed by (address, allocation
/// time), so a reallocated slot starts over. Not thread-safe: one owner calls `scan`.
public struct KernelLeakScanner: Sendable {
    public var rules: KernelLeakRules

    struct ObjectKey: Hashable, Sendable {
        var address: UInt64
        var allocatedAt: UInt64
        init(_ o: KernelScanObject) { (address, allocatedAt) = (o.address, o.allocatedAt.bitPattern) }
    }
    struct ObjectState: Sendable {
        var unreferencedScans = 0
        var reported = false
        /// A hash of the object's pointer-like words at the last scan that read them.
        var checksum: UInt64?
    }
    private var states: [ObjectKey: ObjectState] = [:]
    /// Scans done so far.
    public private(set) var scans = 0

    public init(rules: KernelLeakRules = KernelLeakRules()) {
        self.rules = rules
    }

    /// Objects the scanner holds state for.
    public var trackedObjects: Int { states.count }

    /// Scans the paused guest seen through `view`.
    /// - Parameters:
    ///   - objects: the live objects (the kernel ledger's).
    ///   - freedSlots: address → size of objects freed under tracking and not reallocated: stale
    ///     memory, left out of the conservative slab roots.
    ///   - extraRoots: more root ranges (loaded modules' data).
    ///   - now: the caller's clock, in the seconds of `KernelScanObject.allocatedAt`.
    ///   - writtenFrames: guest-physical frames written since the previous scan (dirty log); nil
    ///     when unknown (then the written rule does not apply).
    ///   - cache: candidate words of the frames earlier scans read (`CandidateWindow.kernel`), kept
    ///     across scans by the caller: `writtenFrames` must name every frame written since the
    ///     cache was last used. Written frames are dropped and read again (all when
    ///     `writtenFrames` is nil); nil: every scan reads all it marks through.
    ///   - budget: when the scan must stop (it is then incomplete), and the bytes the cache may hold.
    public mutating func scan(view: KernelView, objects: [KernelScanObject], freedSlots: [UInt64: UInt64] = [:],
                              extraRoots: [Range<UInt64>] = [], now: Double, writtenFrames: Set<UInt64>?,
                              cache: FrameCandidateCache? = nil, budget: ScanBudget = .unlimited) -> KernelScanResult {
        let started = DispatchTime.now().uptimeNanoseconds
        let roots = view.kernelRoots()
        let rootSeconds = Double(DispatchTime.now().uptimeNanoseconds &- started) / 1e9
        Self.prepare(cache, written: writtenFrames, memoryBytes: budget.memoryBytes)
        var source = KernelMemorySource(space: view.space, directMapBase: try? view.directMapBase(), cache: cache, budget: budget)
        var result = scan(objects: objects, roots: roots, memory: &source, freedSlots: freedSlots, extraRoots: extraRoots,
                          now: now, writtenFrames: writtenFrames)
        result.statistics.rootSeconds = rootSeconds
        result.statistics.bytesScanned = source.bytesScanned
        result.statistics.cache = Self.finish(source.cache)
        if source.unreadablePages > 0 { result.problems.append("\(source.unreadablePages) mapped kernel page(s) could not be read") }
        if source.stop != nil { result.problems.append("the scan stopped at its time limit") }
        return result
    }

    /// The scan over roots already enumerated and any kernel memory (the pure part, for tests).
    public mutating func scan(objects given: [KernelScanObject], roots: KernelRootSet, memory: inout some KernelMemoryReading,
                              freedSlots: [UInt64: UInt64] = [:], extraRoots: [Range<UInt64>] = [], now: Double,
                              writtenFrames: Set<UInt64>?) -> KernelScanResult {
        let started = DispatchTime.now().uptimeNanoseconds
        scans += 1
        var problems = roots.problems
        var objects = Self.deduplicated(given)
        if objects.count > rules.maximumObjects {
            problems.append("\(objects.count) objects, more than the \(rules.maximumObjects) a scan accepts")
            objects = Array(objects.prefix(rules.maximumObjects))
        }
        let oversized = objects.filter { $0.size > rules.maximumObjectBytes }.count
        if oversized > 0 { problems.append("\(oversized) object(s) larger than \(rules.maximumObjectBytes) bytes") }
        let index = HeapBlockIndex(blocks: objects.map { ($0.address, $0.size) })
        // `index` sorts by address as `objects` already is; ranges never wrap.
        let objectRanges = (0..<index.count).map { index.range(of: $0) }

        // Roots: exact ranges whole, conservative ones less the objects and the freed slots.
        var statistics = KernelScanStatistics()
        let exact = roots.ranges.filter { !$0.kind.isConservative } + extraRoots.filter { !$0.isEmpty }.map { KernelRootRange($0, .extra) }
        let conservative = roots.ranges.filter(\.kind.isConservative)
        statistics.conservativeBytesBeforeSubtraction = UInt64.saturatedSum(conservative.map(\.range.length))
        let freed = freedSlots.map { $0.key..<$0.key.addingSaturated($0.value) } + roots.freeSlabSlots
        var rootRanges = exact
        for kind in KernelRootRange.Kind.allCases where kind.isConservative {
            let pieces = RangeSubtraction.subtract(objectRanges + freed, from: conservative.filter { $0.kind == kind }.map(\.range))
            rootRanges += pieces.map { KernelRootRange($0, kind) }
        }
        for r in rootRanges {
            statistics.rootBytes[r.kind] = statistics.rootBytes[r.kind, default: 0].addingSaturated(r.range.length)
        }
        statistics.rootRanges = rootRanges.count
        // kmemleak's rule for objects modified since the last scan: they are in use, so what they
        // point to is too (their contents are roots; they themselves are not reported this scan).
        // Modified means its pointer-like words changed (kmemleak's checksum): a write to another
        // object on the same page does not count. The dirty log says which objects need a new
        // checksum; one not seen before counts as modified when its page was written.
        var written = [Bool](repeating: false, count: objects.count)
        var checksums = [UInt64?](repeating: nil, count: objects.count)
        for i in objects.indices {
            let r = objectRanges[i]
            let previous = states[ObjectKey(objects[i])]?.checksum
            var touched = false
            if let writtenFrames {
                // A frame list that cannot be had counts as written: never report on a guess.
                let frames = memory.frames(of: r.isEmpty ? r.lowerBound..<r.lowerBound.addingSaturated(1) : r)
                touched = frames.map { $0.contains(where: writtenFrames.contains) } ?? true
                if !touched, previous != nil {
                    checksums[i] = previous
                    continue
                }
            }
            let sum = Self.checksum(of: r, in: &memory)
            checksums[i] = sum
            written[i] = previous.map { $0 != sum } ?? touched
        }
        for i in objects.indices where written[i] { rootRanges.append(KernelRootRange(objectRanges[i], .extra)) }
        statistics.writtenObjects = written.filter { $0 }.count

        // Where each vmalloc area starts, as the kernel records it, is no reference to the area.
        // Cached stacks are referenced (through their vm_structs), but their contents are stale.
        var source = InteriorPointerSource(MaskedWordSource(memory, ignoring: roots.ignoredWords, ignoringRanges: roots.cachedStackRanges),
                                           index: index)
        let rootWords = roots.registerWords + roots.cachedStackRanges.map(\.lowerBound)
        let marked = ReachabilityMarker().classify(index, rootRanges: rootRanges.map(\.range),
                                                   rootWords: rootWords.map(source.normalized), memory: &source)
        memory = source.base.base
        let complete = problems.isEmpty && marked.complete && !memory.isIncomplete
        let result = complete ? marked : marked.provenReachableOnly()
        if !marked.complete || memory.isIncomplete { problems.append("kernel memory could not all be read") }

        // Verdicts and the consecutive-scan state.
        var verdicts: [KernelObjectVerdict] = []
        verdicts.reserveCapacity(objects.count)
        var nextStates: [ObjectKey: ObjectState] = [:]
        nextStates.reserveCapacity(objects.count)
        for (i, object) in objects.enumerated() {
            let key = ObjectKey(object)
            var state = states[key] ?? ObjectState()
            let reachability = result.classes[i]
            var holds: [KernelLeakHold] = []
            switch reachability {
            case .reachable?, .possiblyLost?:
                state = ObjectState()
            case .directLeak?, .indirectLeak?:
                state.unreferencedScans += 1
                if now - object.allocatedAt < rules.minimumAge || now.isNaN || object.allocatedAt.isNaN { holds.append(.tooYoung) }
                if state.unreferencedScans < rules.consecutiveScans { holds.append(.fewerScans) }
                if written[i] { holds.append(.writtenSinceLastScan) }
                if holds.isEmpty { state.reported = true }
            case nil:
                // Not proven either way: the state stands, nothing new is reported.
                if !state.reported { holds.append(.scanIncomplete) }
            }
            state.checksum = checksums[i]
            nextStates[key] = state
            let leader = result.leaders[i] >= 0 ? index.starts[result.leaders[i]] : nil
            verdicts.append(KernelObjectVerdict(object: object, reachability: reachability, leader: leader,
                                                indirectBytes: result.indirectBytes[i], unreferencedScans: state.unreferencedScans,
                                                reported: state.reported, holds: state.reported ? [] : holds))
        }
        states = nextStates

        statistics.registerWords = roots.registerWords.count
        statistics.perCPUUnits = roots.perCPUUnits
        statistics.stacks = roots.stacks
        statistics.vmallocAreas = roots.vmallocAreas
        statistics.pageCensus = roots.pageCensus
        statistics.objects = objects.count
        statistics.markSeconds = Double(DispatchTime.now().uptimeNanoseconds &- started) / 1e9
        return KernelScanResult(verdicts: verdicts, statistics: statistics, complete: complete, problems: problems)
    }

    /// Before a scan: drops from `cache` the frames written since it was last used (everything when
    /// that is unknown, or when it holds more than half of `memoryBytes`), and zeroes its counters.
    static func prepare(_ cache: FrameCandidateCache?, written: Set<UInt64>?, memoryBytes: UInt64) {
        guard let cache else { return }
        if let written, cache.storedBytes <= memoryBytes / 2 { cache.invalidate(written) } else { cache.invalidateAll() }
        cache.resetCounters()
    }

    /// After a scan: keeps in `cache` only the frames this scan used (it follows the roots and
    /// objects, and does not grow without bound), and returns its figures.
    static func finish(_ cache: FrameCandidateCache?) -> KernelScanStatistics.CacheFigures? {
        guard let cache else { return nil }
        cache.retainTouched()
        return KernelScanStatistics.CacheFigures(framesRead: cache.framesRead, framesReused: cache.framesReused, storedBytes: cache.storedBytes)
    }

    /// FNV-1a over the pointer-like words of `range` and their count.
    static func checksum(of range: Range<UInt64>, in memory: inout some KernelMemoryReading) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        var count: UInt64 = 0
        memory.forEachCandidate(in: range) { word in
            hash = (hash ^ word) &* 0x0000_0100_0000_01B3
            count &+= 1
        }
        return (hash ^ count) &* 0x0000_0100_0000_01B3
    }

    /// Objects in address order, one per address (the latest allocation wins: a slot reused
    /// while the caller's list still had the old object).
    static func deduplicated(_ objects: [KernelScanObject]) -> [KernelScanObject] {
        var latest: [UInt64: KernelScanObject] = [:]
        latest.reserveCapacity(objects.count)
        for o in objects {
            if let known = latest[o.address], !(o.allocatedAt > known.allocatedAt) { continue }
            latest[o.address] = o
        }
        return latest.values.sorted { $0.address < $1.address }
    }
}
