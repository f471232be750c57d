import AllocationLedger
import DebugInfo
import Foundation
import GuestInterface
import GuestMemory
import Introspection
import X86

extension UserAllocationTracker {
    /// An allocator's entry: reads the call from the thread, lets `CallTracker` decide, and
    /// applies the decision (record a release at once; for an allocation, send its return through
    /// the trampoline). Then runs the displaced first instruction. The caller has checked that the
    /// thread can make the displaced instruction's accesses. `registersAtEntry`: the thread's
    /// registers as the `int3` would have found them, when they are not the trap's own (an
    /// exitless stub's fallback).
    func enter(_ site: AllocatorSite, trap: inout GuestTrap, registersAtEntry: GeneralRegisters? = nil, user: UserMemory,
               memory: GuestMemory) throws {
        var registers = registersAtEntry ?? trap.state.registers
        let root = PageTableRoot(cr3: trap.state.cr3)
        let (view, task) = identifier.kernelContext(of: trap, memory: memory)
        var entry = CallEntry(function: site.entryPoint.function,
                              arguments: CallArguments(site.entryPoint.convention, registers: registers),
                              thread: ThreadKey(root: root, fsBase: trap.fsBase, task: task),
                              rsp: registers.rsp, returnAddress: try user.word(registers.rsp), site: registers.rip)
        // The word in the slot of the thread's outermost call, read with its rights (not needed
        // for a tail call, whose return address is already the trampoline).
        let outerSlotWord = entry.returnAddress == CallTracker.trampoline ? nil
            : calls.withLock { $0.outermostSlot(of: entry.thread) }.flatMap { try? user.word($0) }
        let decision = calls.withLock { $0.enter(entry, outerSlotWord: outerSlotWord) }
        patcher.exitless?.noteTask(task, root: root, threadPointer: trap.fsBase)
        if Self.tracing {
            Self.trace("vcpu\(trap.state.index) enter \(entry.function.rawValue) cr3=\(hex(root.rawValue)) task=\(hex(task)) fs=\(hex(trap.fsBase)) rsp=\(hex(entry.rsp)) ret=\(hex(entry.returnAddress)) rdi=\(hex(registers.rdi)) rsi=\(hex(registers.rsi))\(entry.returnAddress == CallTracker.trampoline ? " (tail call)" : "")")
        }
        if decision == .nested {
            counters.withLock { $0.nestedEntries += 1 }
        } else {
            // The process's mappings first: the walk looks its CFI rules up in the files mapped there.
            let tid = identifier.identify(view: view, current: task, root: root, stack: [registers.rip, entry.returnAddress])
            let walkStarted = clock.now
            let (walked, found) = identifier.captureStack(site: registers.rip, returnAddress: entry.returnAddress,
                                                          framePointer: registers.rbp, stackPointer: entry.rsp, root: root, user: user,
                                                          extraFrames: 1)
            let stack = namedByCallSite(&entry, frames: walked, root: root)
            let walkEnded = clock.now
            countWalk(found, started: walkStarted, ended: walkEnded)
            let context = CallContext(stack: stack, thread: tid, time: walkEnded)
            switch decision {
            case .nested, .forwardedRelease:
                counters.withLock { $0.nestedEntries += 1 }
            case .release(let address):
                // At an address that is also another family's deallocator, no mismatch can be told.
                ledger.recordRelease(of: address, by: entry, context: context, strict: isStrict(root),
                                     checksFamily: !site.aliasesOtherFamilies)
                counters.withLock { $0.releases += 1 }
            case .redirect(let slot):
                // Only where the thread itself may write (never a read-only or copy-on-write page):
                // otherwise this call is not tracked.
                // Write-ahead: the call is known (and journaled) before its slot holds the
                // trampoline, so a monitor killed in between can still be recovered.
                let inFlight = calls.withLock { c in c.redirected(entry, context: context); return CallsInFlight(c.pending) }
                callJournal.withLock { $0 }?(inFlight)
                do {
                    try user.writeWord(slot, CallTracker.trampoline)
                } catch {
                    calls.withLock { $0.withdraw(entry) }
                    throw error
                }
                counters.withLock { $0.entries += 1 }
            }
        }
        try runDisplaced(site, &registers, user: user)
        trap.resume = registers
    }

    /// A fault at the return trampoline: when `CallTracker` accepts it as the return of a call in
    /// flight, put the thread back at its real return address and record the result. Otherwise
    /// the guest gets the fault and the call stays in flight.
    func complete(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        let state = trap.state
        let root = PageTableRoot(cr3: state.cr3)
        let user = UserMemory(memory: memory, cr3: state.cr3, cr4: state.cr4, efer: state.efer)
        let (view, task) = identifier.kernelContext(of: trap, memory: memory)
        let fault = TrampolineFault(rip: state.registers.rip, faultAddress: trap.faultAddress, errorCode: trap.errorCode,
                                    noExecute: user.noExecute, thread: ThreadKey(root: root, fsBase: trap.fsBase, task: task),
                                    rsp: state.registers.rsp, result: state.registers.rax)
        let slotWord = try? user.word(state.registers.rsp &- 8)
        let verdict = calls.withLock { $0.complete(fault, slotWord: slotWord, storedPointer: { try? user.word($0) }) }
        switch verdict {
        case .failure(let why):
            counters.withLock { $0.trampolineFaultsDeclined += 1 }
            // One note per address space (a process may forge thousands); the counter has them all.
            if spaces.withLock({ $0.trampolineNoted.insert(root).inserted }) {
                let tid = view.flatMap { v in task == 0 ? nil : try? v.threadID(ofTask: task) } ?? 0
                notes.add("thread \(tid) (address space \(hex(root.rawValue))): fault at the return trampoline with rsp \(hex(state.registers.rsp)) passed to the guest: \(why)")
            }
            if Self.tracing { Self.trace("vcpu\(state.index) trampoline fault declined: \(why)") }
            return false
        case .success(let completion):
            trap.resume.rip = completion.resumeAt
            if Self.tracing {
                Self.trace("vcpu\(state.index) return \(completion.call.function.rawValue) cr3=\(hex(root.rawValue)) rsp=\(hex(state.registers.rsp)) size=\(completion.call.size) result=\(hex(state.registers.rax))")
            }
            counters.withLock { $0.returns += 1 }
            ledger.record(completion, strict: isStrict(root))
            return true
        }
    }

    /// Counts a stack walk that found `found` frames between `started` and `ended`, and the CFI
    /// tables built meanwhile (counted as such, not as the walk's cost).
    func countWalk(_ found: CallFrameWalker.Counts, started: UInt64, ended: UInt64) {
        let built = identifier.unwind.takeBuilt()
        counters.withLock { c in
            c.stackWalks += 1
            c.stackFramesByCFI += found.callFrameInformation
            c.stackFramesByFramePointer += found.framePointer
            c.stackWalkNanoseconds &+= (ended &- started) &- min(built.nanoseconds, ended &- started)
            c.unwindTablesBuilt += built.tables
            c.unwindTableNanoseconds &+= built.nanoseconds
        }
    }

    /// Whether the ledger saw this address space from its start (so an unknown release is a finding).
    func isStrict(_ root: PageTableRoot) -> Bool { spaces.withLock { $0.isStrict(root) } }

    /// LEAKVISOR_TRACE_ALLOC: one line per trapped allocator event on stderr (development aid).
    static let tracing = ProcessInfo.processInfo.environment["LEAKVISOR_TRACE_ALLOC"] != nil

    static func trace(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
