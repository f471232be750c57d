import Synchronization

/// A small, bounded cache of page translations keyed by (root, paging mode, virtual page).
/// A huge-page translation is stored once and serves every address inside that page.
///
/// Validity rule: a cached translation is only correct while the guest cannot change its page
/// tables, that is while every vCPU is paused. The owner must drop the entries whenever the guest
/// may have run: call `invalidateAll()` on every resume, or call `synchronize(epoch:)` with a
/// counter the VMM bumps on every resume before each use. Code that reads while other vCPUs run
/// (the per-exit paths of the vCPU loop) must not use a cache.
///
/// Thread-safe. When full, the oldest entry is evicted (FIFO).
public final class TranslationCache: Sendable {
    /// Hit, miss and eviction counts since creation.
    public struct Statistics: Hashable, Sendable {
        public var hits: Int
        public var misses: Int
        public var evictions: Int

        public init(hits: Int = 0, misses: Int = 0, evictions: Int = 0) {
            self.hits = hits
            self.misses = misses
            self.evictions = evictions
        }
    }

    struct Key: Hashable {
        let root: PageTableRoot
        let mode: PageTableMode
        let pageSize: PageSize
        let virtualPage: GuestVirtualAddress
    }

    private struct State {
        var entries: [Key: Translation] = [:]
        var order: [Key] = []      // the keys of `entries`, oldest at `oldest` going round
        var oldest = 0
        var epoch: UInt64 = 0
        var statistics = Statistics()

        mutating func removeAll(where drop: (Key) -> Bool) {
            let kept = (order[oldest...] + order[..<oldest]).filter { !drop($0) }
            for key in order where drop(key) { entries[key] = nil }
            order = Array(kept)
            oldest = 0
        }
    }

    public let capacity: Int
    private let state: Mutex<State>

    /// A cache holding at most `capacity` pages (at least 1).
    public init(capacity: Int = 256) {
        self.capacity = max(1, capacity)
        state = Mutex(State())
    }

    /// Number of cached pages.
    public var count: Int { state.withLock { $0.entries.count } }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// The epoch the current entries belong to (see `synchronize(epoch:)`).
    public var epoch: UInt64 { state.withLock { $0.epoch } }

    /// Drops every entry.
    public func invalidateAll() {
        state.withLock { s in
            s.entries.removeAll(keepingCapacity: true)
            s.order.removeAll(keepingCapacity: true)
            s.oldest = 0
        }
    }

    /// Drops the entries of one address space (for example after the guest freed its tables).
    public func invalidate(root: PageTableRoot) {
        state.withLock { $0.removeAll { $0.root == root } }
    }

    /// Drops every entry unless `epoch` is the one they were filled under, then records `epoch`.
    /// Pass a counter that the VMM increments whenever the guest resumes.
    public func synchronize(epoch: UInt64) {
        state.withLock { s in
            guard s.epoch != epoch else { return }
            s.entries.removeAll(keepingCapacity: true)
            s.order.removeAll(keepingCapacity: true)
            s.oldest = 0
            s.epoch = epoch
        }
    }

    /// The cached translation of `va`, rebased to `va`, or nil.
    func lookup(_ va: GuestVirtualAddress, root: PageTableRoot, mode: PageTableMode) -> Translation? {
        state.withLock { s in
            for size in PageSize.allCases {
                let key = Key(root: root, mode: mode, pageSize: size, virtualPage: va.pageBase(for: size))
                if let hit = s.entries[key] {
                    s.statistics.hits += 1
                    return hit.rebased(to: va)
                }
            }
            s.statistics.misses += 1
            return nil
        }
    }

    /// Stores the page of `translation`, evicting the oldest entry when full.
    func insert(_ translation: Translation, root: PageTableRoot, mode: PageTableMode) {
        let key = Key(root: root, mode: mode, pageSize: translation.pageSize, virtualPage: translation.virtualPageBase)
        let capacity = capacity
        state.withLock { s in
            if s.entries.updateValue(translation, forKey: key) != nil { return }
            if s.order.count < capacity {
                s.order.append(key)
            } else {
                s.entries[s.order[s.oldest]] = nil
                s.order[s.oldest] = key
                s.oldest = (s.oldest + 1) % capacity
                s.statistics.evictions += 1
            }
        }
    }
}
