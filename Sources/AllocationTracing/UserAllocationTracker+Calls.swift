import X86
import AllocationLedger
import Foundation
import GuestInterface
import GuestMemory
import Introspection

extension UserAllocationTracker {
    /// An allocator's entry: record a release at once; for an allocation, remember the call and
    /// send its return through the trampoline. Then run the displaced first instruction. The
    /// caller has checked that the thread can make the displaced instruction's accesses.
    func enter(_ site: AllocatorSite, trap: inout GuestTrap, user: UserMemory, memory: GuestMemory) throws {
        var registers = trap.state.registers
        let root = Self.root(trap.state.cr3)
        let (view, task) = kernelContext(of: trap, memory: memory)
        let thread = ThreadKey(root: root, fsBase: trap.fsBase, task: task)
        let entryRSP = registers.rsp
        let returnAddress = try user.word(entryRSP)
        let function = site.entryPoint.function
        let arguments = site.entryPoint.convention
        // A call from inside a tracked call (new → malloc), or tail-called by one (realloc(NULL) →
        // malloc: its return address is already the trampoline), belongs to the outer call.
        var nested = returnAddress == Self.trampoline
        if !nested, let outer = calls.withLock({ $0.isNested(thread, rsp: entryRSP) ? $0.outermost[thread] : nil }) {
            // The outer call is in flight only while its return slot holds the trampoline: a thread
            // that left it (longjmp, a signal handler) and called again at that slot has overwritten it.
            if (try? user.word(outer)) == Self.trampoline {
                nested = true
            } else {
                calls.withLock { $0.forgetOutermost(thread) }
            }
        }
        if Self.tracing {
            Self.trace("vcpu\(trap.state.index) enter \(function.rawValue) cr3=\(hex(root.rawValue)) task=\(hex(task)) fs=\(hex(trap.fsBase)) rsp=\(hex(entryRSP)) ret=\(hex(returnAddress)) rdi=\(hex(registers.rdi)) rsi=\(hex(registers.rsi))\(nestedText(returnAddress))")
        }
        if nested {
            counters.withLock { $0.nestedEntries += 1 }
        } else {
            let stack = captureStack(site: registers.rip, returnAddress: returnAddress, framePointer: registers.rbp,
                                     stackPointer: entryRSP, user: user)
            let tid = identify(view: view, current: task, root: root, stack: stack)
            let time = clock.now
            if function.releases {
                let pointer = arguments.oldPointer.map { $0.value(in: registers) } ?? 0
                let release = PendingCalls.ReleaseCall(pointer: pointer, rsp: entryRSP, returnAddress: returnAddress,
                                                       site: registers.rip)
                if calls.withLock({ $0.isForwarded(release, thread: thread) }) {
                    counters.withLock { $0.nestedEntries += 1 }
                } else {
                    ledger.release(in: root, address: pointer, function: function, stack: stack, thread: tid,
                                   time: time, strict: isStrict(root))
                    counters.withLock { $0.releases += 1 }
                }
            } else {
                var resultPointer: UInt64 = 0
                if case .storedThrough(let register) = arguments.result { resultPointer = register.value(in: registers) }
                let call = PendingCall(function: function, size: arguments.size.bytes(in: registers) ?? UInt64.max,
                                       oldPointer: arguments.oldPointer.map { $0.value(in: registers) } ?? 0,
                                       resultPointer: resultPointer,
                                       returnAddress: returnAddress, stack: stack, thread: tid, time: time, owner: thread)
                // Only where the thread itself may write (never a read-only or copy-on-write page):
                // otherwise this call is not tracked.
                try user.writeWord(entryRSP, Self.trampoline)
                calls.withLock {
                    $0.bySlot[StackSlot(root: root, address: entryRSP)] = call
                    $0.outermost[thread] = entryRSP
                    $0.lastRelease[thread] = nil
                }
                counters.withLock { $0.entries += 1 }
            }
        }
        try runDisplaced(site, &registers, user: user)
        trap.resume = registers
    }

    /// A fault at the return trampoline: when `TrampolineReturn` accepts it as the return of a
    /// call in flight, put the thread back at its real return address and record the result.
    /// Otherwise the guest gets the fault and the call stays in flight.
    func complete(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        let state = trap.state
        let root = Self.root(state.cr3)
        let slot = StackSlot(root: root, address: state.registers.rsp &- 8)
        let user = UserMemory(memory: memory, cr3: state.cr3, cr4: state.cr4, efer: state.efer)
        let (view, task) = kernelContext(of: trap, memory: memory)
        let fault = TrampolineFault(rip: state.registers.rip, faultAddress: trap.faultAddress, errorCode: trap.errorCode,
                                    noExecute: user.noExecute, thread: ThreadKey(root: root, fsBase: trap.fsBase, task: task),
                                    rsp: state.registers.rsp, result: state.registers.rax)
        let call = calls.withLock { $0.bySlot[slot] }
        let verdict = TrampolineReturn.decide(fault, call: call, slotWord: try? user.word(slot.address),
                                              storedPointer: { try? user.word($0) })
        let effects: [LedgerEffect]
        switch verdict {
        case .failure(let why):
            counters.withLock { $0.trampolineFaultsDeclined += 1 }
            // One note per address space (a process may forge thousands); the counter has them all.
            if trampolineNoted.withLock({ $0.insert(root).inserted }) {
                let tid = view.flatMap { v in task == 0 ? nil : try? v.threadID(ofTask: task) } ?? 0
                table.withLock { $0.note("thread \(tid) (address space \(hex(root.rawValue))): fault at the return trampoline with rsp \(hex(state.registers.rsp)) passed to the guest: \(why)") }
            }
            if Self.tracing { Self.trace("vcpu\(state.index) trampoline fault declined: \(why)") }
            return false
        case .success(let accepted):
            effects = accepted
        }
        guard let call, calls.withLock({ c -> Bool in
            guard c.bySlot.removeValue(forKey: slot) != nil else { return false }
            if c.outermost[fault.thread] == slot.address { c.outermost[fault.thread] = nil }
            return true
        }) else { return false }
        trap.resume.rip = call.returnAddress
        if Self.tracing {
            Self.trace("vcpu\(state.index) return \(call.function.rawValue) cr3=\(hex(root.rawValue)) rsp=\(hex(state.registers.rsp)) size=\(call.size) result=\(hex(state.registers.rax))")
        }
        counters.withLock { $0.returns += 1 }
        for effect in effects {
            switch effect {
            case .allocated(let address, let size):
                ledger.allocate(in: root, address: address, size: size, function: call.function, stack: call.stack,
                                thread: call.thread, time: call.time)
            case .released(let address):
                ledger.release(in: root, address: address, function: call.function, stack: call.stack,
                               thread: call.thread, time: call.time, strict: isStrict(root))
            }
        }
        return true
    }
}

extension UserAllocationTracker {
    /// Whether the ledger saw this address space from its start (so an unknown release is a finding).
    func isStrict(_ root: PageTableRoot) -> Bool { !preexisting.withLock { $0.contains(root) } }

    /// LEAKVISOR_TRACE_ALLOC: one line per trapped allocator event on stderr (development aid).
    static let tracing = ProcessInfo.processInfo.environment["LEAKVISOR_TRACE_ALLOC"] != nil

    static func trace(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    func nestedText(_ returnAddress: UInt64) -> String {
        returnAddress == Self.trampoline ? " (tail call)" : ""
    }
}

func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
