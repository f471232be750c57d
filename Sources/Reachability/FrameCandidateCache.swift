import GuestMemory

/// The values a frame cache keeps: the window [base, base + span) of 64-bit words that could be
/// pointers of one half of the address space. At most 2^55 wide, so a kept word packs its offset
/// from `base` and its slot in one `UInt64`.
public struct CandidateWindow: Sendable, Equatable {
    public let base: UInt64
    public let span: UInt64

    /// User-space pointers: [4 KiB, 2^47).
    public static let user = CandidateWindow(base: 0x1000, span: 0x0000_8000_0000_0000 - 0x1000)
    /// Kernel-half pointers: [0xFFFF_8000_0000_0000, 2^64).
    public static let kernel = CandidateWindow(base: 0xFFFF_8000_0000_0000, span: 1 << 47)

    public func contains(_ value: UInt64) -> Bool { value &- base < span }
}

/// What a scan has read of each guest-physical page frame: the words that could be pointers (in
/// its `window`), with their slot in the page. A frame's entry stays valid until the frame is
/// written; the owner drops written frames (from the dirty log) before it trusts the cache again,
/// so a rescan reads only frames written since the last scan.
///
/// Not thread-safe: its owner calls it under a lock of its own.
// SAFETY: @unchecked because its dictionaries are mutated without a lock of its own; every use goes
// through one owner at a time (`ReachabilityScanner` calls it only inside its `Mutex`, a kernel
// tracking session only inside the lock a kernel scan holds, tests and benchmarks from one
// thread), so no two threads ever touch it at once.
public final class FrameCandidateCache: @unchecked Sendable {
    public let window: CandidateWindow
    /// A kept word: the value's offset from the window's base in the low 55 bits, the slot (0...511)
    /// above. A frame's words are kept in slot order, so its list is ascending.
    static let slotShift: UInt64 = 55
    static let valueMask: UInt64 = (1 << 55) - 1

    private var frames: [UInt64: [UInt64]] = [:]
    private var touched: Set<UInt64> = []
    /// Estimated bytes the cache holds: its words, plus per frame the array header and the
    /// dictionary entry (what a scan's memory limit counts).
    public private(set) var storedBytes: UInt64 = 0
    static let frameOverheadBytes: UInt64 = 80

    static func bytes(of kept: [UInt64]) -> UInt64 { UInt64(kept.count) * 8 + frameOverheadBytes }

    /// Frames read from guest memory and frames served from the cache, since `resetCounters`
    /// (a scan asks once per frame).
    public private(set) var framesRead = 0
    public private(set) var framesReused = 0

    public init(window: CandidateWindow = .user) {
        precondition(window.span <= Self.valueMask + 1, "a candidate window is at most 2^55 wide")
        self.window = window
    }

    public var cachedFrames: Int { frames.count }

    /// Whether the cache holds a valid copy of `frame` (not counted as a use).
    public func contains(_ frame: UInt64) -> Bool { frames[frame] != nil }

    /// The kept words of a frame, read now if the cache has no valid copy. A frame read while the
    /// cache holds `limit` bytes or more is returned without being kept.
    public func candidates(frame: UInt64, memory: GuestMemory, keepingWithin limit: UInt64 = .max) throws(GuestMemoryError) -> [UInt64] {
        touched.insert(frame)
        if let kept = frames[frame] {
            framesReused += 1
            return kept
        }
        // SAFETY: the buffer lives only in this call (deallocated on every exit); `readWords` either
        // fills all 512 words or throws before any is read, and slots are indexed 0..<512 only.
        let page = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: 512)
        defer { page.deallocate() }
        try memory.readWords(at: GuestPhysicalAddress(frame << 12), into: page)
        var kept: [UInt64] = []
        let (base, span) = (window.base, window.span)
        for slot in 0..<512 {
            let offset = page[slot] &- base
            if offset < span { kept.append(offset | UInt64(slot) << Self.slotShift) }
        }
        framesRead += 1
        guard storedBytes < limit else { return kept }
        if let old = frames.updateValue(kept, forKey: frame) { storedBytes -= Self.bytes(of: old) }
        storedBytes += Self.bytes(of: kept)
        return kept
    }

    /// Calls `body` with the value of each kept word of a frame (`kept`, as `candidates` returned
    /// it) whose slot lies in `slots` (word indices 0...512 of the page): a binary search for the
    /// first, so a small range of a page costs its own words only.
    public func forEachValue(of kept: [UInt64], slots: Range<UInt64>, _ body: (UInt64) -> Void) {
        forEachSlotValue(of: kept, slots: slots) { body($1) }
    }

    /// `forEachValue`, with each word's slot.
    @inline(__always)
    public func forEachSlotValue(of kept: [UInt64], slots: Range<UInt64>, _ body: (UInt64, UInt64) -> Void) {
        let base = window.base
        var low = 0, high = kept.count
        if slots.lowerBound > 0 {
            let first = slots.lowerBound << Self.slotShift
            while low < high {
                let middle = (low + high) / 2
                if kept[middle] < first { low = middle + 1 } else { high = middle }
            }
        }
        let end = slots.upperBound
        while low < kept.count, kept[low] >> Self.slotShift < end {
            body(kept[low] >> Self.slotShift, base &+ (kept[low] & Self.valueMask))
            low += 1
        }
    }

    /// Forgets frames that were written (their next use reads them again).
    public func invalidate(_ written: some Sequence<UInt64>) {
        for frame in written {
            if let old = frames.removeValue(forKey: frame) { storedBytes -= Self.bytes(of: old) }
        }
    }

    /// Forgets everything (no dirty log: every scan is a full scan).
    public func invalidateAll() {
        frames = [:]
        storedBytes = 0
    }

    /// Keeps only the frames the scans since the last call used, so the cache holds what the
    /// scanned memory maps, not everything it ever mapped.
    public func retainTouched() {
        if touched.count * 4 < frames.count {
            // A round that read little (a rescan marked from its tables): built from what it touched.
            var kept: [UInt64: [UInt64]] = [:]
            kept.reserveCapacity(touched.count)
            for frame in touched { if let entry = frames[frame] { kept[frame] = entry } }
            frames = kept
        } else {
            frames = frames.filter { touched.contains($0.key) }
        }
        storedBytes = frames.values.reduce(0) { $0 + Self.bytes(of: $1) }
        touched = []
    }

    public func resetCounters() {
        framesRead = 0
        framesReused = 0
    }
}
