import X86

/// The whole ledger as a value: what a snapshot keeps so that a restored guest's tracking goes on
/// with the blocks, findings and scans it had.
public struct LedgerState: Sendable, Codable {
    /// Ended spaces in the order they ended.
    var ended: [AddressSpaceLedger]
    var live: [AddressSpaceLedger]
    /// Interned stacks by index.
    var stacks: [[UInt64]]
}

extension AllocationLedger {
    /// A consistent copy of the ledger's state.
    public func savedState() -> LedgerState {
        state.withLock { s in
            LedgerState(ended: s.ended, live: s.live.values.sorted { $0.pageTableRoot < $1.pageTableRoot }, stacks: s.stacks.stacks)
        }
    }

    /// Replaces the ledger's contents with a saved state. Refused (nothing changed) when a block or
    /// finding refers to a stack the state does not hold, or two live spaces share a root.
    public func restore(_ saved: LedgerState) throws(LedgerStateError) {
        let stackCount = saved.stacks.count
        for space in saved.ended + saved.live {
            let stacks = space.blocks.values.map(\.stack) + space.findings.map(\.stack) + Array(space.siteHistory.keys)
            if let bad = stacks.first(where: { Int($0) >= stackCount }) { throw .unknownStack(bad) }
        }
        var table = StackTable()
        for stack in saved.stacks { _ = table.intern(stack) }
        // Two equal stacks would intern to one index: the saved indices would no longer match.
        guard table.stacks.count == stackCount else { throw .duplicateStacks }
        var live: [PageTableRoot: AddressSpaceLedger] = [:]
        for space in saved.live {
            guard live.updateValue(space, forKey: space.pageTableRoot) == nil else { throw .duplicateSpace(space.pageTableRoot) }
        }
        state.withLock { s in
            s.ended = saved.ended
            s.live = live
            for root in live.keys { s.blocksChanged(in: root) }
            s.stacks = table
        }
    }
}

/// Why a saved ledger state was refused.
public enum LedgerStateError: Error, CustomStringConvertible, Equatable {
    case unknownStack(UInt32)
    case duplicateStacks
    case duplicateSpace(PageTableRoot)

    public var description: String {
        switch self {
        case .unknownStack(let index): return "the saved ledger refers to stack \(index), which it does not hold"
        case .duplicateStacks: return "the saved ledger holds the same stack twice"
        case .duplicateSpace(let root): return "the saved ledger holds address space \(root) twice"
        }
    }
}
