import X86
/// Unwinds a task's kernel stack with the kernel's ORC tables, as the kernel's own unwinder
/// does: start from the `inactive_task_frame` at `thread.sp` (or the vCPU's registers), then per frame find the
/// entry for the return address (in a loaded module's own ORC for module code), compute the
/// caller's stack pointer (CFA) from SP or BP, read
/// the return address below it, recover BP. Stops at the user-mode entry frame, at an `end`
/// entry, at a frame without an entry, when the stack pointer does not rise, or off the stack.
struct KernelStackUnwinder {
    let view: KernelView
    let orc: KernelORC

    /// Unwinds from the task's saved switch frame, or from a vCPU's registers when the task is
    /// running there in kernel mode.
    func unwind(_ task: GuestTask, running registers: GeneralRegisters?, limit: Int) throws(IntrospectionError) -> [UInt64] {
        let layout = view.kernel.layout
        let stackLow = task.stack, stackHigh = task.stack &+ (32 << 10)
        var ip: UInt64, sp: UInt64, bp: UInt64
        var returnAddress: Bool
        if let registers {
            (ip, sp, bp, returnAddress) = (registers.rip, registers.rsp, registers.rbp, false)
            guard sp >= stackLow, sp < stackHigh else { return [ip] }  // on an IRQ or exception stack
        } else {
            let frame = try view.u64(try view.member(task.address, layout.task.threadSP, "task_struct.thread.sp"), "task_struct.thread.sp")
            guard frame >= stackLow, frame < stackHigh else { return [] }
            ip = try view.u64(try view.member(frame, layout.switchFrame.returnAddress, "inactive_task_frame.ret_addr"),
                              "inactive_task_frame.ret_addr")
            sp = try view.member(frame, layout.switchFrame.size, "the frame above inactive_task_frame")
            bp = try view.u64(try view.member(frame, layout.switchFrame.bp, "inactive_task_frame.bp"), "inactive_task_frame.bp")
            returnAddress = true
        }
        var ips: [UInt64] = []
        while ips.count < limit, ip >= 0xFFFF_8000_0000_0000 {
            ips.append(ip)
            guard let entry = entry(for: ip &- (returnAddress ? 1 : 0)) else { break }
            if entry.kind == .end || entry.kind == .undefined { break }
            var cfa: UInt64
            switch entry.spRegister {
            case KernelORC.Register.sp: cfa = sp &+ UInt64(bitPattern: Int64(entry.spOffset))
            case KernelORC.Register.bp: cfa = bp &+ UInt64(bitPattern: Int64(entry.spOffset))
            case KernelORC.Register.spIndirect: cfa = try read(sp) &+ UInt64(bitPattern: Int64(entry.spOffset))
            case KernelORC.Register.bpIndirect: cfa = try read(bp &+ UInt64(bitPattern: Int64(entry.spOffset)))
            default: return ips  // needs a register the sleeping frame did not save
            }
            guard cfa > sp || entry.kind != .call, cfa >= stackLow, cfa <= stackHigh else { break }
            let previousSP = sp
            switch entry.kind {
            case .call:
                ip = try read(cfa &- 8)
                sp = cfa
                returnAddress = true
            case .registers:
                // A full pt_regs at cfa: a kernel entry frame. User mode means the bottom.
                let regs = layout.ptRegs.offsets
                guard try read(cfa, regs["cs"]) & 3 == 0 else { return ips }
                ip = try read(cfa, regs["ip"])
                sp = try read(cfa, regs["sp"])
                if entry.bpRegister == KernelORC.Register.undefined { bp = try read(cfa, regs["bp"]) }
                returnAddress = false
            case .partialRegisters:
                // Only the iret frame (ip, cs, flags, sp, ss) lies at cfa.
                let ipOffset = UInt64(layout.ptRegs.offsets["ip"] ?? 0)
                let base = cfa &- ipOffset
                guard try read(base, layout.ptRegs.offsets["cs"]) & 3 == 0 else { return ips }
                ip = try read(base &+ ipOffset)
                sp = try read(base, layout.ptRegs.offsets["sp"])
                returnAddress = false
            case .end, .undefined:
                return ips
            }
            switch entry.bpRegister {
            case KernelORC.Register.previousSP: bp = try read(cfa &+ UInt64(bitPattern: Int64(entry.bpOffset)))
            case KernelORC.Register.bp where entry.kind == .call: bp = try read(bp &+ UInt64(bitPattern: Int64(entry.bpOffset)))
            default: break
            }
            if entry.kind == .call && sp <= previousSP { break }
        }
        return ips
    }

    /// The ORC entry for run-time address `ip`: from the table of the loaded module whose text
    /// holds it (run-time addresses), else from the kernel's (link-time addresses).
    private func entry(for ip: UInt64) -> KernelORC.Entry? {
        if let details = view.cachedModuleDetails(containing: ip) {
            guard details.module.containsText(ip) else { return nil }
            return details.orc?.entry(for: ip)
        }
        return orc.entry(for: ip &- view.slide)
    }

    private func read(_ address: UInt64) throws(IntrospectionError) -> UInt64 {
        try view.u64(address, "kernel stack")
    }

    /// The `pt_regs` field at `offset` of a frame at `base` on the stack.
    private func read(_ base: UInt64, _ offset: Int?) throws(IntrospectionError) -> UInt64 {
        try read(try view.member(base, offset ?? 0, "pt_regs field"))
    }
}
