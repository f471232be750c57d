import AllocationLedger
import X86

extension AllocationLedger {
    /// Records the release an entry decided (`EntryDecision.release`), attributed to that entry
    /// (`checksFamily`: as for `release`).
    func recordRelease(of address: UInt64, by entry: CallEntry, context: CallContext, strict: Bool, checksFamily: Bool) {
        release(in: entry.thread.root, address: address, function: entry.function, stack: context.stack,
                thread: context.thread, time: context.time, strict: strict, checksFamily: checksFamily)
    }

    /// Applies the effects of a call's accepted return, attributed to the call (its entry's stack,
    /// thread and time).
    func record(_ completion: CallCompletion, strict: Bool) {
        let call = completion.call
        for effect in completion.effects {
            switch effect {
            case .allocated(let address, let size):
                allocate(in: call.owner.root, address: address, size: size, function: call.function, stack: call.stack,
                         thread: call.thread, time: call.time)
            case .released(let address):
                release(in: call.owner.root, address: address, function: call.function, stack: call.stack,
                        thread: call.thread, time: call.time, strict: strict)
            }
        }
    }
}
