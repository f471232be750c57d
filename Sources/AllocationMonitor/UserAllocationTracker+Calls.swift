import AllocationTracking
import Foundation
import GuestMemory
import Introspection
import VMM

extension UserAllocationTracker {
    /// An allocator's entry: record a release at once; for an allocation, remember the call and
    /// send its return through the trampoline. Then run the displaced first instruction.
    func enter(_ site: AllocatorSite, trap: inout GuestTrap, user: UserMemory, memory: GuestMemory) throws {
        var registers = trap.state.registers
        let root = Self.root(trap.state.cr3)
        let thread = ThreadKey(root: root, fsBase: trap.fsBase)
        let entryRSP = registers.rsp
        let returnAddress = try user.word(entryRSP)
        let function = site.entryPoint.function
        let arguments = site.entryPoint.convention
        // A call from inside a tracked call (new → malloc), or tail-called by one (realloc(NULL) →
        // malloc: its return address is already the trampoline), belongs to the outer call.
        let nested = returnAddress == Self.trampoline || calls.withLock { $0.isNested(thread, rsp: entryRSP) }
        if Self.tracing {
            Self.trace("vcpu\(trap.state.index) enter \(function.rawValue) cr3=\(hex(root)) fs=\(hex(trap.fsBase)) rsp=\(hex(entryRSP)) ret=\(hex(returnAddress)) rdi=\(hex(registers.rdi)) rsi=\(hex(registers.rsi))\(nestedText(returnAddress))")
        }
        if nested {
            counters.withLock { $0.nestedEntries += 1 }
        } else {
            let stack = captureStack(site: registers.rip, returnAddress: returnAddress, framePointer: registers.rbp,
                                     stackPointer: entryRSP, user: user)
            let tid = identify(trap: trap, root: root, memory: memory, stack: stack)
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
                                       returnAddress: returnAddress, stack: stack, thread: tid, time: time)
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

    /// A return into the trampoline: put the thread back at its real return address and record
    /// the result.
    func complete(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        let root = Self.root(trap.state.cr3)
        let slot = StackSlot(root: root, address: trap.state.registers.rsp &- 8)
        let thread = ThreadKey(root: root, fsBase: trap.fsBase)
        guard let call = calls.withLock({ c -> PendingCall? in
            let call = c.bySlot.removeValue(forKey: slot)
            if call != nil, c.outermost[thread] == slot.address { c.outermost[thread] = nil }
            return call
        }) else { return false }
        trap.resume.rip = call.returnAddress
        let result = trap.state.registers.rax
        if Self.tracing {
            Self.trace("vcpu\(trap.state.index) return \(call.function.rawValue) cr3=\(hex(root)) rsp=\(hex(trap.state.registers.rsp)) size=\(call.size) result=\(hex(result))")
        }
        counters.withLock { $0.returns += 1 }
        func allocated(_ address: UInt64, _ size: UInt64) {
            ledger.allocate(in: root, address: address, size: size, function: call.function, stack: call.stack,
                            thread: call.thread, time: call.time)
        }
        func released(_ address: UInt64) {
            ledger.release(in: root, address: address, function: call.function, stack: call.stack,
                           thread: call.thread, time: call.time, strict: isStrict(root))
        }
        switch call.function {
        case .realloc, .reallocarray:
            if result != 0 {
                if call.oldPointer != 0, call.oldPointer != result { released(call.oldPointer) }
                else if call.oldPointer == result { released(result) }
                allocated(result, call.size)
            } else if call.size == 0, call.oldPointer != 0, call.function == .realloc {
                released(call.oldPointer)        // glibc: realloc(p, 0) frees p and returns NULL
            }
        case .posixMemalign:
            let user = UserMemory(memory: memory, cr3: trap.state.cr3, cr4: trap.state.cr4)
            if result == 0, let address = try? user.word(call.resultPointer), address != 0 { allocated(address, call.size) }
        case .pvalloc:
            if result != 0 { allocated(result, max(4096, (call.size &+ 4095) & ~4095)) }
        default:
            if result != 0 { allocated(result, call.size) }
        }
        return true
    }
}

extension UserAllocationTracker {
    /// Whether the ledger saw this address space from its start (so an unknown release is a finding).
    func isStrict(_ root: UInt64) -> Bool { !preexisting.withLock { $0.contains(root) } }

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
