import X86
import DebugInfo

/// Where a thread's user-mode registers were found.
public enum UserContextSource: Sendable, Equatable, CustomStringConvertible {
    /// The thread is running in user mode on this vCPU: its registers are the vCPU's.
    case vcpu(Int)
    /// The thread is in the kernel (blocked, or preempted): the registers saved at kernel entry
    /// (`pt_regs` at the top of its kernel stack).
    case savedAtKernelEntry

    public var description: String {
        switch self {
        case .vcpu(let n): return "running in user mode on vCPU \(n)"
        case .savedAtKernelEntry: return "in the kernel (user registers saved at kernel entry)"
        }
    }
}

extension KernelView {
    /// The task each vCPU is running (`current_task` in its per-CPU area), by vCPU index.
    public func currentTasks() throws(IntrospectionError) -> [Int: UInt64] {
        guard let offset = kernel.symbols.perCPUOffset(of: "current_task") else { throw .missingSymbol("current_task") }
        var result: [Int: UInt64] = [:]
        for cpu in vcpus {
            result[cpu.index] = try kernelPointer(cpu.perCPUBase &+ offset, "current_task of vCPU \(cpu.index)")
        }
        return result
    }

    /// The user-mode registers of a user thread.
    /// `current` is `currentTasks()`, read once by the caller for all the threads it asks about.
    public func userRegisters(of task: GuestTask, current: [Int: UInt64]) throws(IntrospectionError)
        -> (GeneralRegisters, UserContextSource)
    {
        // An exiting thread has dropped its mm (PF_EXITING) but still has its user frame.
        guard task.mm != 0 || task.flags & 0x4 != 0, !task.isKernelThread else {
            throw .noUserContext(pid: task.pid, why: "it is a kernel thread")
        }
        for cpu in vcpus where cpu.privilegeLevel == 3 && current[cpu.index] == task.address {
            return (cpu.registers, .vcpu(cpu.index))
        }
        guard task.stack >= 0xFFFF_8000_0000_0000 else { throw .noUserContext(pid: task.pid, why: "no kernel stack") }
        let p = kernel.layout.ptRegs
        // THREAD_SIZE is 16 KiB on x86-64 (32 KiB with KASAN): take the one whose frame is a user frame.
        for threadSize in [UInt64(16 << 10), 32 << 10] {
            let frame = task.stack &+ threadSize &- UInt64(p.size)
            guard let raw = try? words(frame, p.size / 8, "pt_regs") else { continue }
            func field(_ name: String) -> UInt64 { raw[(p.offsets[name] ?? 0) / 8] }
            guard field("cs") & 3 == 3, field("ss") & 3 == 3, field("ip") < 0x0100_0000_0000_0000 else { continue }
            var r = GeneralRegisters()
            r.r15 = field("r15"); r.r14 = field("r14"); r.r13 = field("r13"); r.r12 = field("r12")
            r.rbp = field("bp"); r.rbx = field("bx"); r.r11 = field("r11"); r.r10 = field("r10")
            r.r9 = field("r9"); r.r8 = field("r8"); r.rax = field("ax"); r.rcx = field("cx")
            r.rdx = field("dx"); r.rsi = field("si"); r.rdi = field("di"); r.rip = field("ip")
            r.rflags = field("flags"); r.rsp = field("sp")
            return (r, .savedAtKernelEntry)
        }
        throw .noUserContext(pid: task.pid, why: "no user frame at the top of its kernel stack")
    }

    /// A user thread's FS base (its thread pointer): the vCPU's when the thread is on one (the
    /// kernel does not change FS), else what the kernel saved at its last context switch.
    public func fsBase(of task: GuestTask, current: [Int: UInt64]) throws(IntrospectionError) -> UInt64 {
        if let cpu = vcpus.first(where: { current[$0.index] == task.address }) { return cpu.fsBase }
        return try u64(try member(task.address, kernel.layout.task.threadFSBase, "task_struct.thread.fsbase"), "task_struct.thread.fsbase")
    }

    /// A task's kernel frames (sleeping, or running in kernel mode on a vCPU), symbolized: unwound with the kernel's ORC tables when the
    /// image has them; otherwise return addresses on its kernel stack that follow a call
    /// instruction (what the kernel's own "?"-marked stack dumps show).
    /// `current` is `currentTasks()` and `lines` is `kernelLineTable()`, read once by the caller
    /// for all the threads it asks about.
    public func kernelStack(of task: GuestTask, current: [Int: UInt64], lines: Symbolizer?,
                            limit: Int = 32) throws(IntrospectionError) -> [GuestStackFrame] {
        guard task.stack >= 0xFFFF_8000_0000_0000 else { return [] }
        func frame(_ pc: UInt64, _ method: String) -> GuestStackFrame? {
            kernelFrame(pc, isReturnAddress: true, method: method, lines: lines)
        }
        let running = vcpus.first { $0.privilegeLevel == 0 && current[$0.index] == task.address }
        if let orc = kernel.orc {
            let ips = try KernelStackUnwinder(view: self, orc: orc).unwind(task, running: running?.registers, limit: limit)
            return ips.compactMap { frame($0, "orc") }
        }
        var sp = running?.registers.rsp ?? 0
        if running == nil { sp = try u64(try member(task.address, kernel.layout.task.threadSP, "task_struct.thread.sp"), "task_struct.thread.sp") }
        let top = task.stack &+ (16 << 10) &- UInt64(kernel.layout.ptRegs.size)
        guard sp >= task.stack, sp < top else { return [] }
        var frames: [GuestStackFrame] = []
        for value in try words(sp, Int(top - sp) / 8, "kernel stack") where frames.count < limit {
            guard value >= 0xFFFF_FFFF_8000_0000, let f = frame(value, "kernel stack scan"), (f.offset ?? 0) > 0,
                  followsCall(value) else { continue }
            frames.append(f)
        }
        return frames
    }

    /// libdwfl over the debug vmlinux, when one was given (for file:line of kernel addresses).
    public func kernelLineTable() -> Symbolizer? {
        kernel.debugFile.flatMap { path -> Symbolizer? in
            guard let s = try? Symbolizer(), (try? s.addModule(name: "vmlinux", hostPath: path, loadBias: 0)) != nil else { return nil }
            return s
        }
    }

    /// A kernel address as a frame: symbol+offset, and file:line from `lines` (the debug vmlinux,
    /// linked at unslid addresses) or, in a loaded module, from the host's `.ko` of that module
    /// (`GuestKernel.moduleDirectories`). A return address is looked up at the call (pc − 1).
    /// `outerLine`: where the code was inlined into the named function, when it was (the line of
    /// `kmalloc()` in the caller rather than the line inside slab.h).
    public func kernelFrame(_ pc: UInt64, isReturnAddress: Bool, method: String, lines: Symbolizer?,
                            outerLine: Bool = false) -> GuestStackFrame? {
        guard let symbol = locate(kernelAddress: pc) else { return nil }
        let lookup = pc &- (isReturnAddress ? 1 : 0)
        let location: SymbolizedLocation?
        if symbol.module != nil {
            location = cachedModuleDetails(containing: pc).flatMap { cachedModuleLocation($0, pc: lookup) }
        } else {
            location = lines?.symbolize(pc: lookup &- slide)
        }
        let outer = outerLine && location?.outerLine != nil
        return GuestStackFrame(pc: pc, function: symbol.name, offset: symbol.offset, module: symbol.module ?? "vmlinux",
                               file: outer ? location?.outerFile : location?.file, line: outer ? location?.outerLine : location?.line,
                               method: method)
    }

    /// Whether the bytes before `address` are a near call (E8 rel32, FF /2 with ModRM forms).
    func followsCall(_ address: UInt64) -> Bool {
        guard let b = try? bytes(address &- 7, 7, "code before a return address") else { return false }
        if b[2] == 0xE8 { return true }                       // call rel32
        if b[5] == 0xFF, b[6] & 0x38 == 0x10 { return true }  // call *%reg
        if b[4] == 0xFF, b[5] & 0x38 == 0x10 { return true }  // call *disp8(%reg)
        if b[1] == 0xFF, b[2] & 0x38 == 0x10 { return true }  // call *disp32(%reg|%rip)
        return false
    }
}
