import GuestMemory
import Introspection

/// Candidate words of one process's virtual memory, through its page tables and the frame cache.
/// Translations are walked once per page per scan; pages that are not present are skipped whole
/// (a missing upper-level entry skips everything it would have mapped), and the number of pages one
/// scan may visit is bounded, so a hostile guest's huge mappings cannot make a scan run away.
public struct ProcessMemorySource: CandidateSource {
    let space: AddressSpace
    let cache: FrameCandidateCache
    /// Virtual page → frame (nil: not present), for this scan.
    private(set) var frames: [UInt64: UInt64?] = [:]
    /// Virtual page → its candidate words, once this scan has fetched them (one lookup per revisit).
    private var pageWords: [UInt64: [UInt64]] = [:]
    /// Page steps taken (a present page, or a run of absent ones skipped at once), and the bound:
    /// the work one scan may do, however large the guest's mappings or pages are.
    public private(set) var pagesVisited = 0
    public let pageBudget: Int
    /// Set when the budget ran out or a frame could not be read: the result is then incomplete.
    public private(set) var incomplete = false
    public private(set) var bytesScanned: UInt64 = 0

    public init(space: AddressSpace, cache: FrameCandidateCache, pageBudget: Int = 64 << 20) {
        self.space = space
        self.cache = cache
        self.pageBudget = pageBudget
    }

    /// The frame behind a virtual page, or nil when it is not present; `skip` is how far the
    /// caller may jump when nothing is mapped there.
    mutating func frame(ofPage page: UInt64) -> (frame: UInt64?, skip: UInt64) {
        if let known = frames[page] { return (known, 4096) }
        do {
            let t = try space.translate(GuestVirtualAddress(page))
            let frame = t.physicalAddress.rawValue >> 12
            // Fill in the rest of a large page at once.
            let size = t.pageSize.bytes
            if size > 4096 {
                let base = page & ~(size - 1), baseFrame = frame - ((page - base) >> 12)
                var p = base
                while p < base + size { frames[p] = baseFrame + ((p - base) >> 12); p += 4096 }
            } else {
                frames[page] = frame
            }
            return (frame, 4096)
        } catch {
            if case .notPresent(_, let level, _) = error {
                let span: UInt64 = 4096 << (9 * UInt64(level - 1))
                frames[page] = .some(nil)
                return (nil, span - (page & (span - 1)))
            }
            frames[page] = .some(nil)
            return (nil, 4096)
        }
    }

    /// Frames this scan read or reused.
    public var touchedFrames: [UInt64] { frames.values.compactMap { $0 } }

    public mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void) {
        var page = range.lowerBound & ~0xFFF
        while page < range.upperBound {
            guard pagesVisited < pageBudget else { incomplete = true; return }
            pagesVisited += 1
            let words: [UInt64]
            var skip: UInt64 = 4096
            if let known = pageWords[page] {
                words = known
            } else {
                let (frame, span) = frame(ofPage: page)
                skip = span
                guard let frame else {
                    page = page &+ skip
                    if page == 0 { return }
                    continue
                }
                guard let read = try? cache.candidates(frame: frame, memory: space.memory) else {
                    incomplete = true
                    page = page &+ skip
                    if page == 0 { return }
                    continue
                }
                pageWords[page] = read
                words = read
            }
            defer { page = page &+ skip; if page == 0 { page = .max } }
            let low = max(range.lowerBound, page), high = min(range.upperBound, page + 4096)
            bytesScanned &+= high - low
            if low == page, high == page + 4096 {
                for w in words { body(w & FrameCandidateCache.valueMask) }
            } else {
                for w in words {
                    let address = page + (w >> FrameCandidateCache.slotShift) * 8
                    if address >= low, address + 8 <= high { body(w & FrameCandidateCache.valueMask) }
                }
            }
        }
    }

    /// Frames of the pages a range spans that this scan translated (present ones only).
    public mutating func frames(of range: Range<UInt64>) -> [UInt64] {
        var result: [UInt64] = []
        var page = range.lowerBound & ~0xFFF
        while page < range.upperBound, pagesVisited < pageBudget {
            pagesVisited += 1
            let (frame, skip) = frame(ofPage: page)
            if let frame { result.append(frame) }
            page = page &+ skip
            if page == 0 { break }
        }
        return result
    }
}
