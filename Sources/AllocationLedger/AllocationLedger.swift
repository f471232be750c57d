import Introspection
import Reachability
import Synchronization
import X86

/// The allocation ledger, kept outside the guest: per address space, the live blocks with size,
/// allocating function, interned stack, time and thread; findings (double and unknown frees,
/// mismatched deallocators); and the blocks of processes that exited ("at exit" records).
/// Safe to use from every vCPU thread at once.
public final class AllocationLedger: Sendable {
    /// What a release did.
    public enum ReleaseOutcome: Sendable, Equatable {
        case released(LiveBlock)
        case null
        case finding(LedgerFinding.Kind)
    }

    struct State: Sendable {
        var live: [PageTableRoot: AddressSpaceLedger] = [:]
        var ended: [AddressSpaceLedger] = []
        var stacks = StackTable()
        /// Counts every change to any space's live blocks; per space, the count at its last change.
        var blockChanges: UInt64 = 0
        var changedAt: [PageTableRoot: UInt64] = [:]
        /// Per space, the starts whose block changed since its blocks were last taken for a scan.
        var changeLogs: [PageTableRoot: BlockChangeLog] = [:]

        /// Counts a change of `space`'s blocks at `start` (nil: any of them may have changed).
        mutating func blocksChanged(in space: PageTableRoot, at start: UInt64? = nil) {
            blockChanges &+= 1
            changedAt[space] = blockChanges
            guard changeLogs[space] != nil else { return }
            if let start { changeLogs[space]?.note(start) } else { changeLogs[space] = nil }
        }
    }

    let state = Mutex(State())

    public init() {}

    /// What the ledger did with an allocator's result.
    public enum AllocationOutcome: Sendable, Equatable {
        case recorded
        /// Refused as implausible (its end wraps or lies past user space): counted, and kept as a finding.
        case refused
    }

    /// Records a block returned by an allocator. A block that does not fit in user space (a forged
    /// or corrupt result) is refused: scans and reports never see it, and the space gets a finding.
    @discardableResult
    public func allocate(in space: PageTableRoot, address: UInt64, size: UInt64, function: AllocatorFunction,
                         stack: [UInt64], thread: Int32, time: UInt64) -> AllocationOutcome {
        state.withLock { s in
            let id = s.stacks.intern(stack)
            guard UserSpace.contains(start: address, size: size), size <= LiveBlock.sizeMask else {
                var ledger = s.live.removeValue(forKey: space) ?? AddressSpaceLedger(pageTableRoot: space)
                ledger.counters.refusedBlocks += 1
                ledger.record(LedgerFinding(kind: .implausibleBlock, address: address, releasedBy: function, allocatedBy: nil,
                                            thread: thread, time: time, stack: id, size: size))
                s.live[space] = ledger
                return .refused
            }
            s.live[space, default: AddressSpaceLedger(pageTableRoot: space)]
                .insert(address, LiveBlock(size: size, time: time, stack: id, thread: thread, function: function))
            s.blocksChanged(in: space, at: address)
            return .recorded
        }
    }

    /// Records a release. `strict` says whether the ledger saw the space from its start, so that a
    /// release of an address it never saw is a finding rather than a block from before tracking.
    /// `checksFamily` false: the entry point also stands for other families' deallocators (an
    /// alias), so no mismatched-release finding.
    @discardableResult
    public func release(in space: PageTableRoot, address: UInt64, function: AllocatorFunction, stack: [UInt64],
                        thread: Int32, time: UInt64, strict: Bool, checksFamily: Bool = true) -> ReleaseOutcome {
        state.withLock { s in
            // Taken out of the map while it changes, so that its blocks stay uniquely referenced
            // (a copy left in the map would make every release copy all of them).
            var ledger = s.live.removeValue(forKey: space) ?? AddressSpaceLedger(pageTableRoot: space)
            defer { s.live[space] = ledger }
            guard address != 0 else {
                ledger.counters.nullReleases += 1
                return .null
            }
            let id = s.stacks.intern(stack)
            if let block = ledger.remove(address, stack: id) {
                s.blocksChanged(in: space, at: address)
                if checksFamily, block.function.family != function.family, function != .realloc, function != .reallocarray {
                    ledger.record(LedgerFinding(kind: .mismatchedRelease, address: address, releasedBy: function,
                                                allocatedBy: block.function, thread: thread, time: time, stack: id))
                }
                return .released(block)
            }
            let kind: LedgerFinding.Kind
            if ledger.wasReleased(address) { kind = .doubleFree } else if strict { kind = .unknownFree } else { return .null }
            ledger.record(LedgerFinding(kind: kind, address: address, releasedBy: function, allocatedBy: nil,
                                        thread: thread, time: time, stack: id))
            return .finding(kind)
        }
    }

    /// Names the process an address space belongs to (first sight) and what it maps.
    public func identify(_ space: PageTableRoot, as identity: ProcessIdentity, modules: [GuestMapping]) {
        state.withLock { s in
            s.live[space, default: AddressSpaceLedger(pageTableRoot: space)].identity = identity
            s.live[space]?.modules = modules
        }
    }

    /// Replaces the module list of a live space (after a library was loaded).
    public func updateModules(_ space: PageTableRoot, _ modules: [GuestMapping]) {
        state.withLock { s in s.live[space]?.modules = modules }
    }


    /// Records a reachability scan of a live space. `staleAfter`: nanoseconds without a write
    /// after which a referenced block counts as stale in the site history.
    public func record(_ scan: SpaceScan, for space: PageTableRoot, staleAfter: UInt64) {
        state.withLock { s in s.live[space]?.record(scan, staleAfter: staleAfter) }
    }

    /// The live blocks of a space, for a scan.
    public func liveBlocks(of space: PageTableRoot) -> [UInt64: LiveBlock] {
        state.withLock { s in s.live[space]?.blocks ?? [:] }
    }

    /// The live blocks of a space, and a version that differs whenever they have changed since
    /// (for scans that keep what they resolved against them).
    /// Starts the space's change log at that version (`changes(of:since:)`).
    public func liveBlocksAndVersion(of space: PageTableRoot) -> (blocks: [UInt64: LiveBlock], version: UInt64) {
        state.withLock { s in
            let version = s.changedAt[space] ?? 0
            s.changeLogs[space] = BlockChangeLog(since: version)
            return (s.live[space]?.blocks ?? [:], version)
        }
    }

    /// What changed in a space's blocks since `version`, the version an earlier
    /// `liveBlocksAndVersion` or `changes` call returned: for each start that changed, its block
    /// now (nil: none), and the current version; the log then starts again there. Nil when the log
    /// does not reach back to `version` (it was never started there, overflowed, or every block
    /// may have changed): take every block instead. Costs what changed, not what is live.
    public func changes(of space: PageTableRoot, since version: UInt64) -> (blocks: [UInt64: LiveBlock?], version: UInt64)? {
        state.withLock { s in
            let now = s.changedAt[space] ?? 0
            let log = s.changeLogs[space]
            s.changeLogs[space] = BlockChangeLog(since: now)
            guard let log, log.since == version, !log.overflowed else { return nil }
            let blocks = s.live[space]?.blocks ?? [:]
            var changed: [UInt64: LiveBlock?] = [:]
            changed.reserveCapacity(log.starts.count)
            for start in log.starts { changed[start] = .some(blocks[start]) }
            return (changed, now)
        }
    }

    /// The page-table roots of the live spaces that have at least one outstanding block.
    public func scannableSpaces() -> Set<PageTableRoot> {
        state.withLock { s in Set(s.live.values.filter { !$0.blocks.isEmpty }.map(\.pageTableRoot)) }
    }

    /// Ends a live address space: its outstanding blocks become its "at exit" record.
    public func retire(_ space: PageTableRoot, as end: AddressSpaceEnd, time: UInt64) {
        state.withLock { s in
            s.blocksChanged(in: space)
            guard var ledger = s.live.removeValue(forKey: space) else { return }
            ledger.close(end, at: time)
            s.ended.append(ledger)
        }
    }

    /// Ends every live space (the guest stopped).
    public func retireAll(as end: AddressSpaceEnd, time: UInt64) {
        state.withLock { s in
            for (root, var ledger) in s.live.sorted(by: { $0.key < $1.key }) {
                s.blocksChanged(in: root)
                ledger.close(end, at: time)
                s.ended.append(ledger)
            }
            s.live = [:]
        }
    }

    /// A consistent copy of everything, for reports.
    public func snapshot() -> LedgerSnapshot {
        state.withLock { s in
            LedgerSnapshot(spaces: s.ended + s.live.values.sorted { $0.pageTableRoot < $1.pageTableRoot },
                           stacks: s.stacks.stacks)
        }
    }

    /// Memory the ledger uses, estimated from its contents (see `LedgerMemory`).
    public func memoryUse() -> LedgerMemory {
        state.withLock { s in
            let blocks = (s.live.values.map(\.blocks.count) + s.ended.map(\.blocks.count)).reduce(0, +)
            // A Swift Dictionary keeps its load at most 3/4 of a power-of-two bucket count, with one
            // key, one value and one bitmap bit per bucket.
            let buckets = (s.live.values.map(\.blocks.capacity) + s.ended.map(\.blocks.capacity))
                .reduce(0) { $0 + ($1 == 0 ? 0 : Int((Double($1) / 0.75).rounded(.up)).nextPowerOfTwo) }
            return LedgerMemory(blocks: blocks, blockStorageBytes: buckets * (MemoryLayout<UInt64>.stride + MemoryLayout<LiveBlock>.stride) + buckets / 8,
                                stacks: s.stacks.stacks.count, stackFrameBytes: s.stacks.frameBytes)
        }
    }
}

/// The ledger's contents at one moment.
public struct LedgerSnapshot: Sendable {
    /// Ended spaces first (in the order they ended), then live ones.
    public var spaces: [AddressSpaceLedger]
    /// Interned stacks, innermost frame first; blocks and findings refer to them by index.
    public var stacks: [[UInt64]]
}

/// The ledger's memory figures: bytes per live block is `blockStorageBytes / blocks`, the
/// dictionary's empty buckets included (key + value + a bitmap bit per bucket).
public struct LedgerMemory: Sendable, Codable {
    public var blocks: Int
    public var blockStorageBytes: Int
    public var stacks: Int
    public var stackFrameBytes: Int

    public var bytesPerBlock: Double { blocks == 0 ? 0 : Double(blockStorageBytes) / Double(blocks) }
}

extension Int {
    /// The smallest power of two not below this (positive) number.
    var nextPowerOfTwo: Int { self <= 1 ? 1 : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount) }
}
