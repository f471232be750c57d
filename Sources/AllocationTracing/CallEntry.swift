import AllocationLedger
import X86

/// The arguments of an allocator entry, decoded by its convention from the registers at entry.
struct CallArguments: Sendable, Equatable {
    /// Bytes requested; `UInt64.max` when there is no size argument or `count × size` overflows.
    var size: UInt64
    /// The block released or resized (0: none, or NULL).
    var oldPointer: UInt64
    /// posix_memalign's `memptr` (0 for the others).
    var resultPointer: UInt64

    init(size: UInt64 = .max, oldPointer: UInt64 = 0, resultPointer: UInt64 = 0) {
        self.size = size
        self.oldPointer = oldPointer
        self.resultPointer = resultPointer
    }

    init(_ convention: AllocatorConvention, registers: GeneralRegisters) {
        size = convention.size.bytes(in: registers) ?? .max
        oldPointer = convention.oldPointer.map { $0.value(in: registers) } ?? 0
        if case .storedThrough(let register) = convention.result {
            resultPointer = register.value(in: registers)
        } else {
            resultPointer = 0
        }
    }
}

/// An allocator entry as the trap adapter read it from the trapped thread.
struct CallEntry: Sendable, Equatable {
    var function: AllocatorFunction
    var arguments: CallArguments
    var thread: ThreadKey
    /// rsp at the entry: the stack slot holding the return address.
    var rsp: UInt64
    /// The word at rsp (the trampoline when an outer tracked call tail-called this one).
    var returnAddress: UInt64
    /// Where the breakpoint is (rip at the `int3`): tells entry points apart for forwarded releases.
    var site: UInt64
}

/// What a recorded call is dated and attributed with; the adapter captures it only for the calls
/// the tracker records (the outermost ones), since naming the thread reads the guest kernel.
struct CallContext: Sendable, Equatable {
    var stack: [UInt64]
    /// The guest thread id (`current->pid`; 0 when unknown).
    var thread: Int32
    var time: UInt64
}

/// What to do at an allocator's entry.
enum EntryDecision: Equatable, Sendable {
    /// Part of a call in flight on this thread: made from inside it (`new` → `malloc`) or
    /// tail-called by it (`realloc(NULL)` → `malloc`). Counted as nested; nothing recorded.
    case nested
    /// The thread's previous release handed on to another entry point (`delete` → `free`, sized →
    /// unsized `delete`). Counted as nested; nothing recorded.
    case forwardedRelease
    /// Record the release of `address` now (0 for `free(NULL)`).
    case release(address: UInt64)
    /// Track the call: write the trampoline into the return slot at `slot` with the thread's rights,
    /// then tell the tracker with `redirected(_:context:)`. A slot the thread cannot write leaves
    /// the call untracked.
    case redirect(slot: UInt64)
}

/// A return the tracker accepted: resume the thread at `resumeAt` and apply `effects` to the ledger.
struct CallCompletion: Sendable, Equatable {
    var call: PendingCall
    var effects: [LedgerEffect]
    /// The call's real return address.
    var resumeAt: UInt64 { call.returnAddress }
}
