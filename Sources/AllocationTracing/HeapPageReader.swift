/// Word reads of one guest address space for the heap walk, a page at a time with the rights of
/// a user thread (`UserMemory`): a walk reads each chunk header once, mostly in address order, so
/// a few recently read pages are kept (at most `maximumPages`).
final class HeapPageReader {
    let user: UserMemory
    private var pages: [UInt64: [UInt8]] = [:]
    static let pageSize: UInt64 = 4096
    static let maximumPages = 64

    init(user: UserMemory) {
        self.user = user
    }

    func word(_ address: UInt64) throws(GlibcHeapError) -> UInt64 {
        let offset = address & (Self.pageSize - 1)
        // A word that crosses a page is read directly (chunk headers are 16-byte aligned: never).
        guard offset <= Self.pageSize - 8 else {
            do { return try user.word(address) } catch { throw .unreadable(address: address) }
        }
        let page = try self.page(address & ~(Self.pageSize - 1))
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(page[Int(offset) + index]) << (8 * index) }
        return value
    }

    private func page(_ base: UInt64) throws(GlibcHeapError) -> [UInt8] {
        if let cached = pages[base] { return cached }
        let bytes: [UInt8]
        do { bytes = try user.read(base, count: Int(Self.pageSize)) } catch { throw .unreadable(address: base) }
        guard bytes.count == Int(Self.pageSize) else { throw .unreadable(address: base) }
        if pages.count >= Self.maximumPages { pages.removeAll(keepingCapacity: true) }
        pages[base] = bytes
        return bytes
    }
}
