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
/// Only kernel-half words are served (no kernel object lives below).
public struct KernelMemorySource: KernelMemoryReading {
    let space: AddressSpace
    let memory: GuestMemory
    /// Start of the direct map and the highest guest-physical address it covers.
    let directMapBase: UInt64?
    let directMapSize: UInt64
    public var budget: ScanBudget
    /// 4 KiB page → frame (nil: not present), for this scan.
    private var pages: [UInt64: UInt64?] = [:]
    private var buffer = [UInt64](repeating: 0, count: 512)
    public private(set) var stop: ScanStop?
    /// Mapped pages (or page tables) that could not be read.
    public private(set) var unreadablePages = 0
    public private(set) var notPresentPages = 0
    public private(set) var bytesScanned: UInt64 = 0

    public init(space: AddressSpace, directMapBase: UInt64?, budget: ScanBudget = .unlimited) {
        self.space = space
        self.memory = space.memory
        self.directMapBase = directMapBase
        self.directMapSize = space.memory.regions.map(\.end.rawValue).max() ?? 0
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

    public mutating func forEachCandidate(in range: Range<UInt64>, _ body: (UInt64) -> Void) {
        forEachWord(in: range) { _, value in if value >= 0xFFFF_8000_0000_0000 { body(value) } }
    }

    /// Every aligned word of `range` that can be read, with its address (pages not present skipped).
    public mutating func forEachWord(in range: Range<UInt64>, _ body: (_ address: UInt64, _ value: UInt64) -> Void) {
        var address = (range.lowerBound &+ 7) & ~7
        guard address >= range.lowerBound else { return }
        while address < range.upperBound, range.upperBound - address >= 8 {
            guard mayContinue() else { return }
            let page = address & ~0xFFF
            let (found, skip) = frame(ofPage: page)
            guard let frame = found else {
                // Move to the first aligned word past what the missing entry maps.
                let (next, overflow) = page.addingReportingOverflow(skip)
                guard !overflow, next > address else { return }
                address = next
                continue
            }
            let words = Int(min((page &+ 4096) &- address, range.upperBound - address) / 8)
            guard words > 0 else { return }
            let physical = GuestPhysicalAddress((frame << 12) | (address & 0xFFF))
            let read: Bool = buffer.withUnsafeMutableBufferPointer { all in
                // SAFETY: the slice is the first `words` (at most 512) elements of a 512-element buffer.
                let part = UnsafeMutableBufferPointer(rebasing: all[0..<words])
                do { try memory.readWords(at: physical, into: part); return true } catch { return false }
            }
            if read {
                bytesScanned = bytesScanned.addingSaturated(UInt64(words) * 8)
                for i in 0..<words { body(address &+ UInt64(i) * 8, buffer[i]) }
            } else {
                unreadablePages += 1
            }
            let (next, overflow) = address.addingReportingOverflow(UInt64(words) * 8)
            guard !overflow else { return }
            address = next
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
