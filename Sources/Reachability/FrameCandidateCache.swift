import GuestMemory

/// What a scan has read of each guest-physical page frame: the words that could be user-space
/// pointers, with their slot in the page. A frame's entry stays valid until the frame is written;
/// the owner drops written frames (from the dirty log) before it trusts the cache again, so a
/// rescan reads only frames written since the last scan.
///
/// Not thread-safe: the scanner owns it under its lock.
// SAFETY: @unchecked because its dictionaries are mutated without a lock of its own; every use goes
// through one owner at a time (`ReachabilityScanner` calls it only inside its `Mutex`, tests and
// benchmarks from one thread), so no two threads ever touch it at once.
public final class FrameCandidateCache: @unchecked Sendable {
    /// Words outside [minimum, limit) are not kept: no user-space block lives there.
    static let minimum: UInt64 = 0x1000
    static let limit: UInt64 = 0x0000_8000_0000_0000
    /// A kept word: the value in the low 55 bits (user addresses need 47), the slot (0...511) above.
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

    public init() {}

    public var cachedFrames: Int { frames.count }

    /// The candidate words of a frame, read now if the cache has no valid copy.
    public func candidates(frame: UInt64, memory: GuestMemory) throws(GuestMemoryError) -> [UInt64] {
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
        for slot in 0..<512 {
            let value = page[slot]
            if value >= Self.minimum, value < Self.limit { kept.append(value | UInt64(slot) << Self.slotShift) }
        }
        if let old = frames.updateValue(kept, forKey: frame) { storedBytes -= Self.bytes(of: old) }
        storedBytes += Self.bytes(of: kept)
        framesRead += 1
        return kept
    }

    /// Forgets frames that were written (their next use reads them again).
    public func invalidate(_ written: [UInt64]) {
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
    /// scanned processes map, not everything they ever mapped.
    public func retainTouched() {
        frames = frames.filter { touched.contains($0.key) }
        storedBytes = frames.values.reduce(0) { $0 + Self.bytes(of: $1) }
        touched = []
    }

    public func resetCounters() {
        framesRead = 0
        framesReused = 0
    }
}
