@testable import AllocationTracing
import AllocationLedger
import Testing
import X86

/// A guest process in miniature for `CallTracker`: the words of its threads' stacks (and of a
/// `posix_memalign` result), and a real ledger. It applies the tracker's decisions the way
/// `UserAllocationTracker` does (write the trampoline into the return slot, record in the
/// ledger, count), with no guest memory and no KVM.
struct MiniProcess {
    static let root = PageTableRoot(cr3: 0x1234_5000)
    static let main = ThreadKey(root: root, fsBase: 0x7f00_1000_0740, task: 0xFFFF_8880_0311_0000)
    static let trampoline = CallTracker.trampoline

    var tracker = CallTracker()
    let ledger = AllocationLedger()
    /// User memory the calls read and write, by address.
    var words: [UInt64: UInt64] = [:]
    var counters = TrackerCounters()
    var time: UInt64 = 0

    /// Enters `symbol` (its real calling convention) with rsp at `rsp`: after a `call` that pushed
    /// `returnAddress`, or, with nil, after a `jmp` (the slot keeps the word it has: a tail call).
    @discardableResult
    mutating func call(_ symbol: String, rdi: UInt64 = 0, rsi: UInt64 = 0, rdx: UInt64 = 0, rsp: UInt64,
                       returnAddress: UInt64?, thread: ThreadKey = main) throws -> EntryDecision {
        let entryPoint = try #require(AllocatorSymbols.entryPoint(named: symbol))
        if let returnAddress { words[rsp] = returnAddress }
        var registers = GeneralRegisters()
        (registers.rdi, registers.rsi, registers.rdx, registers.rsp) = (rdi, rsi, rdx, rsp)
        let entry = CallEntry(function: entryPoint.function, arguments: CallArguments(entryPoint.convention, registers: registers),
                              thread: thread, rsp: rsp, returnAddress: words[rsp] ?? 0, site: Self.site(of: symbol))
        let outerSlotWord = entry.returnAddress == Self.trampoline ? nil
            : tracker.outermostSlot(of: thread).flatMap { words[$0] }
        let decision = tracker.enter(entry, outerSlotWord: outerSlotWord)
        time += 1
        let context = CallContext(stack: [entry.site, entry.returnAddress], thread: 7, time: time)
        switch decision {
        case .nested, .forwardedRelease:
            counters.nestedEntries += 1
        case .release(let address):
            ledger.recordRelease(of: address, by: entry, context: context, strict: true, checksFamily: true)
            counters.releases += 1
        case .redirect(let slot):
            words[slot] = Self.trampoline
            tracker.redirected(entry, context: context)
            counters.entries += 1
        }
        return decision
    }

    /// The function entered with rsp at `slot` executes `ret` with `rax`: to its caller when the
    /// slot holds a real return address (nil), else into the trampoline, which faults.
    @discardableResult
    mutating func ret(slot: UInt64, rax: UInt64, thread: ThreadKey = main) -> Result<CallCompletion, TrampolineRejection>? {
        guard words[slot] == Self.trampoline else { return nil }
        return trampolineFault(rsp: slot &+ 8, rax: rax, thread: thread)
    }

    /// A fault at the trampoline with `rsp` (just past the slot, after a `ret`), as the #PF gate sees it.
    mutating func trampolineFault(rsp: UInt64, rax: UInt64, thread: ThreadKey = main) -> Result<CallCompletion, TrampolineRejection> {
        let fault = TrampolineFault(rip: Self.trampoline, faultAddress: Self.trampoline, errorCode: 0x14, noExecute: true,
                                    thread: thread, rsp: rsp, result: rax)
        let words = self.words
        let verdict = tracker.complete(fault, slotWord: words[rsp &- 8], storedPointer: { words[$0] })
        switch verdict {
        case .success(let completion):
            counters.returns += 1
            ledger.record(completion, strict: true)
        case .failure:
            counters.trampolineFaultsDeclined += 1
        }
        return verdict
    }

    /// The process's live blocks: address → (size, allocating function).
    var live: [UInt64: LiveBlock] { ledger.liveBlocks(of: Self.root) }
    var findings: [LedgerFinding] { ledger.snapshot().spaces.first { $0.pageTableRoot == Self.root }?.findings ?? [] }
    var spaceCounters: AddressSpaceLedger.Counters? { ledger.snapshot().spaces.first { $0.pageTableRoot == Self.root }?.counters }

    /// A distinct breakpoint address per entry point.
    static func site(of symbol: String) -> UInt64 {
        0x7f00_2000_0000 &+ (symbol.utf8.reduce(UInt64(0)) { $0 &* 31 &+ UInt64($1) } & 0xF_FFF0)
    }
}
