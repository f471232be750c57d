import GuestMemory

/// Bounds-checked reads of guest-virtual memory through one set of guest page tables.
/// Each page of a read is translated on its own; nothing the guest's tables or lengths contain can
/// make a read allocate more than `maximumReadSize` bytes or walk more than one table chain per page.
/// With a `cache`, its validity rule applies (see `TranslationCache`).
public struct AddressSpace: Sendable {
    /// Default bound on one read: 16 MiB.
    public static let defaultMaximumReadSize = 16 << 20

    public let walker: PageTableWalker
    public let cache: TranslationCache?
    public let maximumReadSize: Int

    public var memory: GuestMemory { walker.memory }
    public var root: PageTableRoot { walker.root }
    public var mode: PageTableMode { walker.mode }

    public init(memory: GuestMemory, root: PageTableRoot, mode: PageTableMode, cache: TranslationCache? = nil,
                maximumReadSize: Int = defaultMaximumReadSize) {
        walker = PageTableWalker(memory: memory, root: root, mode: mode)
        self.cache = cache
        self.maximumReadSize = max(0, maximumReadSize)
    }

    /// The address space a vCPU with these control registers is in (IA-32e paging assumed).
    public init(memory: GuestMemory, cr3: UInt64, cr4: UInt64, cache: TranslationCache? = nil) {
        self.init(memory: memory, root: PageTableRoot(cr3: cr3), mode: PageTableMode(cr4: cr4), cache: cache)
    }

    public func translate(_ va: GuestVirtualAddress) throws(TranslationError) -> Translation {
        if let hit = cache?.lookup(va, root: root, mode: mode) { return hit }
        let translation = try walker.translate(va)
        cache?.insert(translation, root: root, mode: mode)
        return translation
    }

    /// Effective permissions of the page holding `va`; `.notPresent` if a level is not present.
    public func permissions(at va: GuestVirtualAddress) throws(TranslationError) -> PagePermissions {
        do {
            return try translate(va).permissions
        } catch {
            if case .notPresent = error { return .notPresent }
            throw error
        }
    }

    /// `count` bytes starting at `va`.
    public func read(_ va: GuestVirtualAddress, count: Int) throws(AddressSpaceError) -> [UInt8] {
        try checkRange(va, count)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        try forEachChunk(va, count) { chunk in bytes += chunk; return true }
        return bytes
    }

    /// A little-endian integer at `va` (may span two pages).
    public func load<T: FixedWidthInteger>(_ type: T.Type, at va: GuestVirtualAddress) throws(AddressSpaceError) -> T {
        let size = MemoryLayout<T>.size
        let translation = try translateForRead(va)
        if translation.bytesToPageEnd >= UInt64(size) {
            do {
                return try memory.load(T.self, at: translation.physicalAddress)
            } catch {
                throw .physicalOutsideMemory(va, physical: translation.physicalAddress, length: size)
            }
        }
        let bytes = try read(va, count: size)
        return bytes.reversed().reduce(T.zero) { ($0 << 8) | T(truncatingIfNeeded: $1) }
    }

    /// `count` consecutive little-endian 64-bit words from `va` (need not be aligned).
    public func readWords(at va: GuestVirtualAddress, count: Int) throws(AddressSpaceError) -> [UInt64] {
        let (length, overflow) = count.multipliedReportingOverflow(by: 8)
        let bytes = try read(va, count: overflow ? Int.max : length)
        return bytes.withUnsafeBytes { raw in
            (0..<count).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
        }
    }

    /// The NUL-terminated string at `va`, decoded as UTF-8 (invalid sequences replaced). Stops at
    /// the first NUL or after `maxLength` bytes, whichever comes first; pages after the NUL are
    /// not touched.
    public func readCString(at va: GuestVirtualAddress, maxLength: Int) throws(AddressSpaceError) -> String {
        guard maxLength >= 0, maxLength <= maximumReadSize else {
            throw .lengthOutOfRange(va, length: maxLength, limit: maximumReadSize)
        }
        // A string cannot continue past the top of the address space: stop there.
        let toTop = 0 &- va.rawValue    // bytes from va to 2^64 (0 means all of them)
        let limit = toTop == 0 ? maxLength : Int(min(UInt64(maxLength), toTop))
        var bytes: [UInt8] = []
        try forEachChunk(va, limit) { chunk in
            if let nul = chunk.firstIndex(of: 0) {
                bytes += chunk[..<nul]
                return false
            }
            bytes += chunk
            return true
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func checkRange(_ va: GuestVirtualAddress, _ count: Int) throws(AddressSpaceError) {
        guard count >= 0, count <= maximumReadSize else {
            throw .lengthOutOfRange(va, length: count, limit: maximumReadSize)
        }
        guard count == 0 || va.adding(UInt64(count - 1)) != nil else { throw .rangeWrapsAround(va, length: count) }
    }

    private func translateForRead(_ va: GuestVirtualAddress) throws(AddressSpaceError) -> Translation {
        do { return try translate(va) } catch { throw .translationFailed(error) }
    }

    /// Calls `body` with consecutive pieces of [va, va+count), each inside one 4 KiB page, until it
    /// returns false. A huge page is translated once and reused for its 4 KiB pieces, so the error
    /// for a huge page running past the end of RAM names the first 4 KiB piece outside it.
    private func forEachChunk(_ va: GuestVirtualAddress, _ count: Int,
                              _ body: ([UInt8]) -> Bool) throws(AddressSpaceError) {
        var cursor = va
        var remaining = count
        var page: Translation?
        while remaining > 0 {
            let translation: Translation
            if let page, page.covers(cursor) {
                translation = page.rebased(to: cursor)
            } else {
                translation = try translateForRead(cursor)
                page = translation
            }
            let length = min(remaining, Int(PageSize.fourKiB.bytes - cursor.pageOffset))
            let chunk: [UInt8]
            do {
                chunk = try memory.read(at: translation.physicalAddress, count: length)
            } catch {
                throw .physicalOutsideMemory(cursor, physical: translation.physicalAddress, length: length)
            }
            guard body(chunk) else { return }
            remaining -= length
            cursor = cursor.advanced(by: length)
        }
    }
}
