import GuestMemory
import X86

/// A `CandidateSource` over guest kernel memory that can also say which frames hold a range
/// (for the written-since-last-scan rule).
public protocol KernelMemoryReading: CandidateSource {
    /// The guest-physical frames behind the present pages of `range`; nil when some page could
    /// not be translated (or the budget ran out first).
    mutating func frames(of range: Range<UInt64>) -> [UInt64]?
}

/// Candidate words of guest kernel virtual memory: direct-map addresses by arithmetic
/// (`directMapBase` + physical), everything else (kernel image, vmalloc, modules) through the
/// kernel's page tables, one translation per page per scan. Pages that are not present hold no
/// words (nothing to miss); pages that are mapped but cannot be read make the source incomplete.
/// Only kernel-half words are served (no kernel object lives below). With a frame cache (of the
/// kernel window), candidates come from it: a frame is read once and kept until its owner drops it
/// as written; without one, every range is read now.
public struct KernelMemorySource: KernelMemoryReading {
    let space: AddressSpace
    let memory: GuestMemory
    /// Start of the direct map and the highest guest-physical address it covers.
    let directMapBase: UInt64?
    let directMapSize: UInt64
    public var budget: ScanBudget
    /// Candidate words by frame, kept across scans (nil: every range is read directly).
    public let cache: FrameCandidateCache?
    /// 4 KiB page → frame (nil: not present), for this scan.
    private var pages: [UInt64: UInt64?] = [:]
    /// Frame → its kept words, once this scan has fetched them (the cache is asked once per frame).
    private var frameWords: [UInt64: [UInt64]] = [:]
    private var buffer = [UInt64](repeating: 0, count: 512)
    public private(set) var stop: ScanStop?
    /// Mapped pages (or page tables) that could not be read.
    public private(set) var unreadablePages = 0
    public private(set) var notPresentPages = 0
    public private(set) var bytesScanned: UInt64 = 0

    /// - Parameter cache: a cache of the kernel window; one of another window is not used. Frames
    ///   are kept in it while it holds less than `budget.memoryBytes`.
    public init(space: AddressSpace, directMapBase: UInt64?, cache: FrameCandidateCache? = nil, budget: ScanBudget = .unlimited) {
        self.space = space
        self.memory = space.memory
        self.directMapBase = directMapBase
        self.directMapSize = space.memory.regions.map(\.end.rawValue).max() ?? 0
        self.cache = cache?.window == .kernel ? cache : nil
        self.budget = budget
    }

    public var isIncomplete: Bool { stop != nil || unreadablePages > 0 }

    mutating func mayContinue() -> Bool {
        guard stop == nil else { return false }
        if let deadline = budget.deadline, budget.clock() >= deadline { stop = .timeLimit }
        return stop == nil
    }

    /// The frame of a kernel page; nil if not present (or unreadable, then counted). `skip`: how
    /// far a caller may move on, past everything a missing table entry would have mapped.
    mutating func frame(ofPage page: UInt64) -> (frame: UInt64?, skip: UInt64) {
        if let base = directMapBase, page >= base, page &- base < directMapSize { return ((page &- base) >> 12, 4096) }
        if let known = pages[page] { return (known, 4096) }
        do {
            let frame = try space.translate(GuestVirtualAddress(page)).physicalAddress.rawValue >> 12
            pages[page] = frame
            return (frame, 4096)
        } catch {
            pages[page] = .some(nil)
            switch error {
            case .notPresent(_, let level, _):
                notPresentPages += 1
                return (nil, ProcessMemorySource.remainder(of: page, entryLevel: level))
            case .nonCanonical:
                // The hole between the halves holds nothing: move on to the kernel half.
                return (nil, page < 0xFFFF_8000_0000_0000 ? 0xFFFF_8000_0000_0000 &- page : 4096)
            case .rootOutsideMemory, .reservedPageSize, .tableOutsideMemory:
                unreadablePages += 1
                return (nil, 4096)
            }
        }
    }

    /// One step of a walk over the aligned words of a range, from the aligned `address` to `end`:
    /// the frame of its page (nil: not present or unreadable), how many words of the range lie
    /// there, and where the walk goes on. Nil when the walk is over (or the budget ran out).
    mutating func step(at address: UInt64, end: UInt64) -> (frame: UInt64?, words: Int, next: UInt64)? {
        guard address < end, end - address >= 8, mayContinue() else { return nil }
        let page = address & ~0xFFF
        let (found, skip) = frame(ofPage: page)
        guard let frame = found else {
            // Move to the first aligned word past what the missing entry maps.
            let (next, overflow) = page.addingReportingOverflow(skip)
            guard !overflow, next > address else { return nil }
            return (nil, 0, next)
        }
        let words = Int(min((page &+ 4096) &- address, end - address) / 8)
        guard words > 0 else { return nil }
        let (next, overflow) = address.addingReportingOverflow(UInt64(words) * 8)
        return (frame, words, overflow ? end : next)
    }

    /// The first aligned word of `range`, nil when there is none.
    static func firstWord(of range: Range<UInt64>) -> UInt64? {
        let address = (range.lowerBound &+ 7) & ~7
        return address >= range.lowerBound ? address : nil
    }

    public mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void) {
        guard let cache, var address = Self.firstWord(of: range) else {
            forEachWord(in: range) { _, value in if CandidateWindow.kernel.contains(value) { body(value) } }
            return
        }
        while let (frame, words, next) = step(at: address, end: range.upperBound) {
            defer { address = next }
            guard let frame else { continue }
            let kept: [UInt64]
            if let known = frameWords[frame] {
                kept = known
            } else {
                do { kept = try cache.candidates(frame: frame, memory: memory, keepingWithin: budget.memoryBytes) } catch {
                    unreadablePages += 1
                    continue
                }
                frameWords[frame] = kept
            }
            bytesScanned = bytesScanned.addingSaturated(UInt64(words) * 8)
            let slot = (address & 0xFFF) >> 3
            cache.forEachValue(of: kept, slots: slot..<slot + UInt64(words), body)
        }
    }

    /// Every aligned word of `range` that can be read, with its address (pages not present
    /// skipped), read from guest memory now (never from the cache).
    public mutating func forEachWord(in range: Range<UInt64>, _ body: (_ address: UInt64, _ value: UInt64) -> Void) {
        guard var address = Self.firstWord(of: range) else { return }
        while let (frame, words, next) = step(at: address, end: range.upperBound) {
            defer { address = next }
            guard let frame else { continue }
            let physical = GuestPhysicalAddress((frame << 12) | (address & 0xFFF))
            let read: Bool = buffer.withUnsafeMutableBufferPointer { all in
                // SAFETY: the slice is the first `words` (at most 512) elements of a 512-element buffer.
                let part = UnsafeMutableBufferPointer(rebasing: all[0..<words])
                do { try memory.readWords(at: physical, into: part); return true } catch { return false }
            }
            guard read else {
                unreadablePages += 1
                continue
            }
            bytesScanned = bytesScanned.addingSaturated(UInt64(words) * 8)
            for i in 0..<words { body(address &+ UInt64(i) * 8, buffer[i]) }
        }
    }

    public mutating func frames(of range: Range<UInt64>) -> [UInt64]? {
        var result: [UInt64] = []
        var page = range.lowerBound & ~0xFFF
        while page < range.upperBound {
            guard mayContinue() else { return nil }
            let before = unreadablePages
            let (frame, skip) = frame(ofPage: page)
            if let frame { result.append(frame) } else if unreadablePages != before { return nil }
            let (next, overflow) = page.addingReportingOverflow(skip)
            if overflow { break }
            page = next
        }
        return result
    }
}
