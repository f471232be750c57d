import GDBRemote
import Glibc
import GuestInterface
import GuestMemory
import X86

extension QEMUGuest {
    /// Why `serve` returned.
    public enum Ending: Sendable {
        /// `requestStop()` was called: the guest is stopped, breakpoints still placed; call
        /// `release()` after any last pause (detach).
        case stopRequested
        /// The QEMU process ended or closed the stub (domain destroyed, shut down, migrated away).
        case ended(String)
        /// The guest stopped for a reason of someone else's (libvirt's suspend, a migration's
        /// stop): it stays stopped; detach, then `release(resume: false)`.
        case pausedOutside
    }

    /// Asks `serve` to stop the guest and return.
    public func requestStop() {
        let running = state.withLock { s -> Bool in
            s.stopRequested = true
            return s.running
        }
        if running { try? gdb.interrupt() }
    }

    /// The event loop, on the caller's thread, until `requestStop()` or the end of the VM: the
    /// guest runs between stops; each stop at a gate or hook breakpoint goes to the trap handler.
    public func serve() -> Ending {
        state.withLock { $0.loopActive = true }
        defer { state.withLock { s in s.loopActive = false; s.running = false } }
        do {
            while true {
                try servePauseRequest()
                if state.withLock({ $0.stopRequested }) { return .stopRequested }
                try syncBreakpoints()
                let resumed = try state.withLock { s throws(QEMUBackendError) -> Bool in
                    if s.pauseRequested || s.stopRequested { return false }
                    try mapped { () throws(GDBRemoteError) in try gdb.send("c") }
                    s.running = true
                    return true
                }
                guard resumed else { continue }
                var reply: String?
                while reply == nil {
                    reply = try mapped { () throws(GDBRemoteError) in try gdb.receive(timeout: 1) }
                }
                state.withLock { $0.running = false }
                mirror?.guestStopped()
                guard let reply, let stop = GDBStopReply(reply) else { continue }
                switch stop {
                case .ended(let why): return .ended("QEMU reported \(why)")
                case .stopped(_, let thread):
                    statistics.withLock { $0.stops += 1 }
                    let started = ContinuousClock.now
                    let ours = try handleStop(thread: thread)
                    statistics.withLock { $0.handlingSeconds += (ContinuousClock.now - started) / .seconds(1) }
                    if !ours && !state.withLock({ $0.pauseRequested || $0.stopRequested }) { return .pausedOutside }
                    if ours, let afterStop = state.withLock({ $0.afterStop }) { afterStop(lastStopWasHook.load(ordering: .relaxed)) }
                }
            }
        } catch QEMUBackendError.gdb(.closed) {
            return .ended("the QEMU process closed its gdbstub (the domain ended)")
        } catch {
            return .ended("\(error)")
        }
    }

    /// Removes every breakpoint of ours and leaves the stub (after `serve`): the guest runs on, or
    /// stays stopped without `resume` (someone else paused it).
    public func release(resume: Bool = true) {
        let placed = state.withLock { s -> Set<UInt64> in defer { s.placed = [] }; return s.placed }
        for address in placed { _ = try? gdb.request("z0,\(String(address, radix: 16)),1") }
        try? afterPause()
        memory.recordHostWrites(false)
        _ = try? gdb.request("Qqemu.PhyMemMode:0")
        guard resume else { return }
        // Detaching resumes the guest (QEMU: `D` continues all vCPUs).
        try? gdb.send("D")
        _ = try? gdb.receive(timeout: 2)
    }

    /// Parks the guest for a waiting `withGuestPaused`: publishes the vCPUs, waits until the
    /// requester is done, then makes its writes visible and re-places the breakpoints it changed.
    func servePauseRequest() throws(QEMUBackendError) {
        guard state.withLock({ $0.pauseRequested }) else { return }
        let vcpus = try captureVCPUs()
        state.withLock { $0.parked = vcpus }
        while state.withLock({ $0.pauseRequested }) { usleep(200) }
        state.withLock { $0.parked = nil }
        try afterPause()
    }

    /// After the monitor wrote guest memory with the guest stopped: writes each written frame again
    /// through the stub, so that QEMU drops what it translated of the code there (TCG keeps
    /// translations of code pages, and our writes through the shared mapping bypass QEMU).
    func afterPause() throws(QEMUBackendError) {
        let frames = memory.takeHostWrittenFrames()
        for frame in frames {
            let address = GuestPhysicalAddress(frame << 12)
            guard let bytes = try? memory.read(at: address, count: 4096) else { continue }
            for chunk in stride(from: 0, to: 4096, by: 1024) {
                let hex = GDBHex.encode(bytes[chunk..<chunk + 1024])
                try mapped { () throws(GDBRemoteError) in try gdb.require("M\(String(frame << 12 + UInt64(chunk), radix: 16)),400:\(hex)") }
            }
        }
        statistics.withLock { $0.pagesRewritten += frames.count }
    }

    /// Places the breakpoints the handler needs now and removes the others: the #BP and #PF gates
    /// while it wants user traps, and its kernel hook sites.
    func syncBreakpoints() throws(QEMUBackendError) {
        let handler = state.withLock { $0.handler }
        var wanted = Set(handler?.kernelHookSites ?? [])
        if handler?.wantsUserTraps == true {
            let gates = try gateHandlers()
            wanted.formUnion([gates.breakpoint, gates.pageFault])
        }
        let placed = state.withLock { $0.placed }
        guard wanted != placed else { return }
        for address in placed.subtracting(wanted) {
            try mapped { () throws(GDBRemoteError) in try gdb.require("z0,\(String(address, radix: 16)),1") }
        }
        for address in wanted.subtracting(placed) {
            try mapped { () throws(GDBRemoteError) in try gdb.require("Z0,\(String(address, radix: 16)),1") }
        }
        state.withLock { $0.placed = wanted }
    }

    /// The #BP and #PF handlers from the IDT (read once, through the first vCPU's page tables).
    func gateHandlers() throws(QEMUBackendError) -> (breakpoint: UInt64, pageFault: UInt64) {
        if let gates = state.withLock({ $0.gates }) { return gates }
        guard let thread = state.withLock({ $0.threads.first }) else { throw .noGate(vector: 3, why: "no vCPU") }
        let registers = try registers(of: thread)
        let space = AddressSpace(memory: memory, cr3: registers.cr3, cr4: registers.cr4)
        func handler(_ vector: Int) throws(QEMUBackendError) -> UInt64 {
            let gate: [UInt64]
            do { gate = try space.readWords(at: GuestVirtualAddress(idtBase).advanced(by: vector * 16), count: 2) } catch {
                throw .noGate(vector: vector, why: "the IDT at 0x\(String(idtBase, radix: 16)) is unreadable: \(error)")
            }
            guard let address = IDTGate.handler(low: gate[0], high: gate[1]) else { throw .noGate(vector: vector, why: "the gate is not present") }
            return address
        }
        let gates = (breakpoint: try handler(3), pageFault: try handler(14))
        state.withLock { $0.gates = gates }
        return gates
    }
}
