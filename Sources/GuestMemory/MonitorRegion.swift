import Synchronization

/// Guest-physical memory the monitor owns: a range outside guest RAM that the guest's e820 map
/// does not describe, so the guest kernel never allocates or maps it. It is the backing of the
/// pages the monitor maps into guest address spaces itself (code, page tables, event rings:
/// `docs/exitless-tracking.md`). The guest may read and write what is mapped for it: every read
/// is bounds-checked (`memory`), and nothing read from it is trusted.
public final class MonitorRegion: Sendable {
    /// The region as bounds-checked memory (one range, `start` to `start + size`).
    public let memory: GuestMemory
    private let pages: Mutex<PagePool>
    private let revoker = Mutex<(@Sendable () -> Void)?>(nil)

    public static let pageSize: UInt64 = 4096

    private struct PagePool {
        var next: UInt64 = 0
        var free: [GuestPhysicalAddress] = []
    }

    /// `size` bytes of host memory (reserved, filled on first touch) for guest-physical `start`.
    public init(start: GuestPhysicalAddress, size: UInt64) throws(GuestMemoryError) {
        guard start.rawValue % (2 << 20) == 0, size % Self.pageSize == 0 else {
            throw .invalidLayout("monitor region at \(start) of \(size) bytes is not aligned")
        }
        memory = GuestMemory(regions: [try GuestRAMRegion(start: start, size: size)])
        pages = Mutex(PagePool())
    }

    public var start: GuestPhysicalAddress { memory.regions[0].start }
    public var size: UInt64 { memory.regions[0].size }
    /// Host address of the backing mapping (for the KVM memory slot only).
    public var hostAddress: UnsafeMutableRawPointer { memory.regions[0].hostAddress }

    /// Where the region goes for a guest with `memorySize` bytes of RAM laid out as `GuestMemory`
    /// does: the first 1 GiB boundary at least 1 GiB above the end of RAM (and above 4 GiB).
    public static func defaultStart(memorySize: UInt64, lowLimit: UInt64 = 0xC000_0000) -> GuestPhysicalAddress {
        let ramEnd = memorySize > lowLimit ? (1 << 32) + memorySize - lowLimit : memorySize
        let gib: UInt64 = 1 << 30
        return GuestPhysicalAddress(max(1 << 32, (ramEnd + gib - 1) / gib * gib) + gib)
    }

    /// A zeroed page of the region, or nil when every page is in use.
    public func allocatePage() -> GuestPhysicalAddress? {
        let page: GuestPhysicalAddress? = pages.withLock { pool in
            if let reused = pool.free.popLast() { return reused }
            guard pool.next + Self.pageSize <= size else { return nil }
            defer { pool.next += Self.pageSize }
            return GuestPhysicalAddress(start.rawValue + pool.next)
        }
        guard let page else { return nil }
        try? memory.fill(0, at: page, count: Int(Self.pageSize))
        return page
    }

    /// Gives a page back (one `allocatePage` returned; anything else is ignored).
    public func freePage(_ page: GuestPhysicalAddress) {
        guard memory.contains(page, length: Int(Self.pageSize)), (page.rawValue - start.rawValue) % Self.pageSize == 0 else { return }
        pages.withLock { pool in
            guard page.rawValue - start.rawValue < pool.next, !pool.free.contains(page) else { return }
            pool.free.append(page)
        }
    }

    /// Set by the machine that made the region guest memory: what takes it away from the guest.
    public func setRevoker(_ revoke: @escaping @Sendable () -> Void) {
        revoker.withLock { $0 = revoke }
    }

    /// Takes the region away from the guest (its memory slot deleted): a translation to it that
    /// KVM or the guest TLB still holds then exits instead of reaching these pages. Once.
    public func revoke() {
        revoker.withLock { r in let once = r; r = nil; return once }?()
    }

    /// Pages handed out and not given back.
    public var pagesInUse: Int { pages.withLock { Int($0.next / Self.pageSize) - $0.free.count } }
}
