import AllocationLedger
import GuestInterface
import Reachability

/// A page fault at the return trampoline as the #PF gate saw it: what decides whether it is the
/// `ret` of an allocator call the monitor redirected, or something a guest thread forged.
struct TrampolineFault: Sendable {
    /// The frame's rip.
    var rip: UInt64
    /// CR2.
    var faultAddress: UInt64
    /// The frame's error code.
    var errorCode: UInt64?
    /// EFER.NXE: an instruction fetch then sets the error code's I/D bit.
    var noExecute: Bool
    /// The faulting thread.
    var thread: ThreadKey
    var rsp: UInt64
    /// rax: the allocator's result.
    var result: UInt64
}

/// What a trampoline return does to the ledger.
enum LedgerEffect: Equatable, Sendable {
    case allocated(address: UInt64, size: UInt64)
    case released(address: UInt64)
}

/// Why a fault at the trampoline is not taken as a return: the guest then gets the fault as it
/// would without the monitor (SIGSEGV at 0x7ffffffff000), and any pending call stays.
enum TrampolineRejection: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not a user-mode instruction fetch of the not-present trampoline page (error code, CR2, rip).
    case notATrampolineFetch
    /// No allocator call waits for a return with this stack pointer.
    case noPendingCall
    /// The call is another thread's (address space, kernel task or thread pointer differ).
    case otherThread
    /// The return slot no longer holds the trampoline address: no `ret` left from it.
    case slotOverwritten
    /// The result cannot be a block of the call's size in user space.
    case implausibleResult(UInt64)
    /// posix_memalign's `*memptr` is unreadable or cannot be a block of the call's size.
    case implausibleStoredPointer

    var description: String {
        switch self {
        case .notATrampolineFetch: return "not an instruction fetch of the trampoline"
        case .noPendingCall: return "no allocator call in flight at that stack pointer"
        case .otherThread: return "the call in flight there is another thread's"
        case .slotOverwritten: return "the return slot does not hold the trampoline"
        case .implausibleResult(let value): return "implausible result 0x\(String(value, radix: 16))"
        case .implausibleStoredPointer: return "implausible or unreadable posix_memalign result"
        }
    }
}

/// The rule for accepting a trampoline return. Pure: the caller reads the guest.
enum TrampolineReturn {
    /// #PF error code of a user-mode fetch from a not-present page (with and without NX).
    static let userFetchNotPresent: UInt64 = 0x14
    static let userAccessNotPresent: UInt64 = 0x04

    /// Accepts the fault as the return of `call` only when it is a user-mode instruction fetch of
    /// the not-present trampoline page (error code and CR2), by the thread that made the call, with
    /// the return slot (`slotWord`, read at rsp - 8 with the thread's rights) still holding the
    /// trampoline as a real `ret` leaves it, and a result that can be a block of the call's size
    /// in user space. `storedPointer` reads posix_memalign's `*memptr` with the thread's rights.
    static func decide(_ fault: TrampolineFault, call: PendingCall?, slotWord: UInt64?,
                       storedPointer: (UInt64) -> UInt64?) -> Result<[LedgerEffect], TrampolineRejection> {
        let trampoline = CallTracker.trampoline
        let expectedCode = fault.noExecute ? userFetchNotPresent : userAccessNotPresent
        guard fault.rip == trampoline, fault.faultAddress == trampoline, fault.errorCode == expectedCode else {
            return .failure(.notATrampolineFetch)
        }
        guard let call else { return .failure(.noPendingCall) }
        guard call.owner == fault.thread else { return .failure(.otherThread) }
        guard slotWord == trampoline else { return .failure(.slotOverwritten) }
        // A call a recovery knows only from the journal: the thread goes home, nothing is recorded.
        if call.journaledOnly == true { return .success([]) }
        return effects(of: call, result: fault.result, storedPointer: storedPointer)
    }

    /// What `call` returning `result` does to the ledger (`storedPointer` reads posix_memalign's
    /// `*memptr`); a failure when the result cannot be a block of the call's size.
    static func effects(of call: PendingCall, result: UInt64,
                        storedPointer: (UInt64) -> UInt64?) -> Result<[LedgerEffect], TrampolineRejection> {
        switch call.function {
        case .realloc, .reallocarray:
            if result != 0 {
                guard isPlausibleBlock(result, size: call.size) else { return .failure(.implausibleResult(result)) }
                var effects: [LedgerEffect] = []
                if call.oldPointer != 0 { effects.append(.released(address: call.oldPointer)) }
                return .success(effects + [.allocated(address: result, size: call.size)])
            }
            if call.size == 0, call.oldPointer != 0, call.function == .realloc {
                return .success([.released(address: call.oldPointer)])   // glibc: realloc(p, 0) frees p, returns NULL
            }
            return .success([])
        case .posixMemalign:
            // An int: only eax is defined.
            guard UInt32(truncatingIfNeeded: result) == 0 else { return .success([]) }
            guard call.resultPointer >= 0x1000, call.resultPointer <= UserSpace.end &- 8,
                  let address = storedPointer(call.resultPointer) else { return .failure(.implausibleStoredPointer) }
            if address == 0 { return .success([]) }
            guard isPlausibleBlock(address, size: call.size) else { return .failure(.implausibleStoredPointer) }
            return .success([.allocated(address: address, size: call.size)])
        case .pvalloc:
            if result == 0 { return .success([]) }
            let (padded, overflow) = call.size.addingReportingOverflow(4095)
            let size = max(4096, padded & ~4095)
            guard !overflow, isPlausibleBlock(result, size: size) else { return .failure(.implausibleResult(result)) }
            return .success([.allocated(address: result, size: size)])
        default:
            if result == 0 { return .success([]) }
            guard isPlausibleBlock(result, size: call.size) else { return .failure(.implausibleResult(result)) }
            return .success([.allocated(address: result, size: call.size)])
        }
    }

    /// A block the guest's allocator can have returned: above page 0 and inside user space, without
    /// wrapping (the bound the ledger itself enforces).
    static func isPlausibleBlock(_ address: UInt64, size: UInt64) -> Bool {
        address >= 0x1000 && UserSpace.contains(start: address, size: size)
    }
}
