import GDBRemote
import GuestInterface
import GuestMemory
import X86

extension QEMUGuest {
    /// A stop reported for `thread`: a gate breakpoint (a user `int3` or a fault at the return
    /// trampoline on its way into the guest kernel), a kernel hook site, or anything else (an
    /// interrupt: nothing to do). Returns whether the thread stopped at a breakpoint of ours.
    @discardableResult
    func handleStop(thread: String?) throws(QEMUBackendError) -> Bool {
        let (threads, placed, gates, handler) = state.withLock { ($0.threads, $0.placed, $0.gates, $0.handler) }
        guard let thread = thread ?? threads.first, let index = threads.firstIndex(of: thread) ?? threads.indices.first else { return false }
        var registers = try registers(of: thread)
        let rip = registers.general.rip
        guard placed.contains(rip) else { return false }
        lastStopWasHook.store(false, ordering: .relaxed)
        if let gates, rip == gates.breakpoint || rip == gates.pageFault {
            let vector = rip == gates.breakpoint ? 3 : 14
            if let handler, try deliverGateTrap(vector: vector, index: index, &registers, handler: handler) {
                // Memory first, registers last: the registers say the trap was handled (the
                // displaced instruction done, e.g. malloc's `push rbp`), so they must never reach
                // QEMU before what the handler wrote (a monitor killed in between would leave the
                // thread past a push whose value never landed). Stopped before the register write,
                // the thread is still at the gate and a recovery handles the trap again.
                try takeDataWrites()
                try write(registers, thread: thread)
                statistics.withLock { $0.userTrapsHandled += 1 }
                return true
            }
            try passGate(at: rip, thread: thread, &registers)
            return true
        }
        // A kernel hook site: the handler runs the hook and says where the thread goes on.
        var trap = GuestTrap(state: snapshot(index: index, registers, general: registers.general, privilegeLevel: registers.privilegeLevel),
                             fsBase: registers.fsBase)
        if registers.privilegeLevel == 0, let handler, handler.kernelHook(&trap, memory: memory) {
            registers.general = trap.resume
            // A hook may have armed new breakpoints (a library mapped): make them visible, before
            // the registers move the thread on (as for a user trap above).
            try afterPause()
            try write(registers, thread: thread)
            statistics.withLock { $0.kernelHooksHandled += 1 }
            lastStopWasHook.store(true, ordering: .relaxed)
            return true
        }
        try stepOver(rip, thread: thread)
        return true
    }

    /// Offers a stop at the #BP or #PF gate to the handler. Returns true when the handler owned it
    /// and `registers` now resume the thread in user mode (no guest kernel code runs).
    func deliverGateTrap(vector: Int, index: Int, _ registers: inout QEMUX86Registers,
                         handler: any GuestTrapHandler) throws(QEMUBackendError) -> Bool {
        let hasErrorCode = vector != 3
        let kernel = registers.general
        let space = AddressSpace(memory: memory, cr3: registers.cr3, cr4: registers.cr4)
        guard let words = try? space.readWords(at: GuestVirtualAddress(kernel.rsp), count: ExceptionFrame.wordCount(hasErrorCode: hasErrorCode)),
              let frame = ExceptionFrame(words, hasErrorCode: hasErrorCode), frame.fromUserMode else { return false }
        let user = frame.interruptedRegisters(kernel, breakpoint: vector == 3)
        var trap = GuestTrap(state: snapshot(index: index, registers, general: user, privilegeLevel: 3), fsBase: registers.fsBase,
                             errorCode: frame.errorCode, faultAddress: registers.cr2)
        let owned = vector == 3 ? handler.userBreakpoint(&trap, memory: memory) : handler.userFetchFault(&trap, memory: memory)
        guard owned else { return false }
        guard trap.exception == nil else {
            // The gdbstub cannot inject an exception: the guest kernel handles the trap as it came.
            statistics.withLock { $0.exceptionsNotDelivered += 1 }
            return false
        }
        // Back to user mode as the exception's `iretq` would: the frame's selectors, the handler's registers.
        registers.general = trap.resume
        registers.setSelector(.cs, UInt16(truncatingIfNeeded: frame.cs))
        registers.setSelector(.ss, UInt16(truncatingIfNeeded: frame.ss))
        return true
    }

    /// Lets the guest handle an exception our gate breakpoint stopped: performs the handler's first
    /// instruction when it is a simple one (Linux's entry starts with a NOP, `clac` or `endbr64`),
    /// else steps over the breakpoint.
    func passGate(at rip: UInt64, thread: String, _ registers: inout QEMUX86Registers) throws(QEMUBackendError) {
        let space = AddressSpace(memory: memory, cr3: registers.cr3, cr4: registers.cr4)
        if let bytes = try? space.read(GuestVirtualAddress(rip), count: 16), let first = GateEntryInstruction(bytes) {
            var general = registers.general
            general.rip = rip &+ UInt64(first.length)
            general.rflags &= ~first.clearedFlags
            registers.general = general
            try write(registers, thread: thread)
            statistics.withLock { $0.gatesPassedByEmulation += 1 }
            return
        }
        statistics.withLock { $0.gatesPassedByStepping += 1 }
        try stepOver(rip, thread: thread)
    }

    /// Runs one instruction of `thread` with our breakpoint at `rip` lifted (the other vCPUs stay stopped).
    func stepOver(_ rip: UInt64, thread: String) throws(QEMUBackendError) {
        let address = String(rip, radix: 16)
        try mapped { () throws(GDBRemoteError) in
            try gdb.require("z0,\(address),1")
            try gdb.send("vCont;s:\(thread)")
            guard try gdb.receive(timeout: 10) != nil else { throw .timedOut(waitingFor: "a single step", seconds: 10) }
            try gdb.require("Z0,\(address),1")
        }
    }

    func write(_ registers: QEMUX86Registers, thread: String) throws(QEMUBackendError) {
        try mapped { () throws(GDBRemoteError) in
            try gdb.require("Hg\(thread)")
            try gdb.require("G\(registers.hex)")
        }
    }

    /// A user trap writes only data (a return address on the thread's stack): nothing QEMU
    /// translated changes, so the frames it wrote need no rewrite through the stub; mirrored
    /// private RAM gets them back directly.
    func takeDataWrites() throws(QEMUBackendError) {
        let frames = memory.takeHostWrittenFrames()
        try mirror?.commit(frames: frames)
    }
}
