import CKVM
import GuestInterface
import GuestMemory
import KVM
import X86

/// Per-vCPU handling of what the host leaves to the monitor: completing `syscall` transitions
/// (kvm_pvm), re-injecting the guest kernel's own `int3`, delivering the monitor's own traps (user
/// breakpoints, return trampolines, kernel hooks) to a `GuestTrapHandler`, and precise reports
/// for anything else. Owned and used by one vCPU thread only.
public final class VCPUAssistant {
    public struct Statistics: Sendable {
        public var syscallsCompleted = 0
        public var faultsPassedThrough = 0
        public var breakpointsReinjected = 0
        public var gateRearms = 0
        public var instructionsEmulated = 0
        public var userTrapsHandled = 0
        public var kernelHooksHandled = 0
        public var exceptionsInjected = 0
        /// Faults at LSTAR from user mode that no `syscall` instruction made (passed to the guest).
        public var systemCallEntriesRefused = 0
    }

    let memory: GuestMemory
    /// The host's own piece (kvm_pvm: half-done `syscall`s, emulation failures); nil where the
    /// CPU does all of it (VMX/SVM).
    private var fixups: EmulatorFixups?
    /// Where the monitor's trap handler is installed (at creation, or later by `leakvisor attach`).
    private let trapHandlers: TrapHandlerSlot
    /// The handler this vCPU took from `trapHandlers` last, acting only once `trapHandlerActive`
    /// says so (tracking may start when the guest takes its payload, after the point a snapshot is made).
    private var installedTrapHandler: (any GuestTrapHandler)?
    private var handlerGeneration: UInt64
    var trapHandlerActive: @Sendable () -> Bool = { true }
    private var handlerActive = false
    var trapHandler: (any GuestTrapHandler)? {
        guard let installedTrapHandler else { return nil }
        if !handlerActive { handlerActive = trapHandlerActive() }
        return handlerActive ? installedTrapHandler : nil
    }
    public private(set) var statistics = Statistics()

    private var gates: [UInt64] = []          // entries of `gateVectors`' handlers, currently armed
    private var gateVectors: [Int] = []
    /// Whether the gates were last placed for a handler that wanted user traps.
    private var gatesForUserTraps = false
    /// Whether the gates were placed once the kernel's final IDT was in place.
    private var gatesPlaced = false
    private var steppingOverGate = false
    private var exitsSinceCheck = 0
    private var lstar: UInt64 = 0
    private var announcedUserSpace = false
    /// Whether a gate exit showed this vCPU running user-mode code (on hosts or runs with gates).
    private(set) var sawUserSpace = false

    init(memory: GuestMemory, fixups: EmulatorFixups?, trapHandlers: TrapHandlerSlot = TrapHandlerSlot()) {
        self.memory = memory
        self.fixups = fixups
        self.trapHandlers = trapHandlers
        (installedTrapHandler, handlerGeneration) = trapHandlers.current
    }

    /// Takes the handler installed since the last look, if one was. Returns whether it changed.
    private func takeInstalledHandler() -> Bool {
        guard trapHandlers.generation != handlerGeneration else { return false }
        (installedTrapHandler, handlerGeneration) = trapHandlers.current
        handlerActive = false
        announcedUserSpace = false
        return true
    }

    /// Called before each entry into the guest (after a pause, too): when a handler was installed
    /// meanwhile, places the gates it needs now, before any guest code can meet its breakpoints.
    func beforeEntry(_ vcpu: VirtualCPU) throws(VMMError) {
        if takeInstalledHandler() { try afterExit(vcpu) }
    }

    var completesSyscalls: Bool { fixups != nil }

    /// The gates that need a hardware breakpoint: #GP and #PF where `syscall` is completed here;
    /// #PF and #BP while the trap handler wants user traps (a user `int3` and a fetch from the
    /// return trampoline reach the guest kernel through them on every host).
    static func gateVectors(completesSyscalls: Bool, userTraps: Bool) -> [Int] {
        var vectors = completesSyscalls ? [vectorGeneralProtection, vectorPageFault] : []
        if userTraps {
            if !completesSyscalls { vectors.append(vectorPageFault) }
            vectors.append(vectorBreakpoint)
        }
        return vectors
    }

    static let msrLSTAR: UInt32 = 0xC000_0082
    static let msrKernelGSBase: UInt32 = 0xC000_0102
    static let vectorBreakpoint = 3
    static let vectorGeneralProtection = 13
    static let vectorPageFault = 14

    /// Called after every exit: keeps the gate breakpoints on the guest's current handlers of the
    /// gates needed now. Checks every exit until the first syscall completes (or, without syscall
    /// completion, until the gates are placed), then every 256th, and at once when the trap
    /// handler starts or stops wanting user traps (detach).
    func afterExit(_ vcpu: VirtualCPU) throws(VMMError) {
        let changed = takeInstalledHandler()
        guard completesSyscalls || installedTrapHandler != nil, !steppingOverGate else { return }
        let userTraps = trapHandler?.wantsUserTraps ?? false
        exitsSinceCheck += 1
        let settled = completesSyscalls ? statistics.syscallsCompleted > 0 : gatesPlaced
        if settled && !changed && userTraps == gatesForUserTraps && exitsSinceCheck < 256 { return }
        exitsSinceCheck = 0
        // The kernel sets LSTAR in syscall_init(), after its final IDT is in place; before that
        // the gates are early-boot handlers and no user code can run.
        if lstar == 0 {
            do { lstar = try vcpu.msr(Self.msrLSTAR) } catch { throw .kvm(error) }
            if lstar == 0 { return }
        }
        let sregs: kvm_sregs
        do { sregs = try vcpu.specialRegisters() } catch { throw .kvm(error) }
        guard sregs.cr0 & 0x8000_0000 != 0, sregs.efer & 0x400 != 0, sregs.idt.limit >= 15 * 16 - 1 else { return }
        let space = AddressSpace(memory: memory, cr3: sregs.cr3, cr4: sregs.cr4)
        let vectors = Self.gateVectors(completesSyscalls: completesSyscalls, userTraps: userTraps)
        var wanted: [UInt64] = []
        for vector in vectors {
            guard let handler = gateHandler(space: space, idtBase: sregs.idt.base, vector: vector) else { return }
            wanted.append(handler)
        }
        gatesPlaced = true
        gatesForUserTraps = userTraps
        if wanted != gates || vectors != gateVectors {
            gates = wanted
            gateVectors = vectors
            statistics.gateRearms += 1
            do { try vcpu.setGuestDebug(hardwareBreakpoints: gates) } catch { throw .kvm(error) }
        }
    }

    /// Handler address of an IDT gate, or nil if the gate cannot be read or is not present.
    private func gateHandler(space: AddressSpace, idtBase: UInt64, vector: Int) -> UInt64? {
        guard let gate = try? space.readWords(at: GuestVirtualAddress(idtBase).advanced(by: vector * 16), count: 2) else {
            return nil
        }
        return IDTGate.handler(low: gate[0], high: gate[1])
    }

    /// The guest took its payload on this vCPU, in user mode (an MMIO exit from `lv-payload`):
    /// tells the trap handler that user space runs, as the first user-mode gate exit would.
    func announceUserSpace(_ vcpu: VirtualCPU) throws(VMMError) {
        sawUserSpace = true
        guard let handler = trapHandler, !announcedUserSpace else { return }
        try mappingErrors { () throws(KVMError) in
            let regs = try vcpu.registers()
            let sregs = try vcpu.specialRegisters()
            guard sregs.cs.dpl == 3 else { return }
            if lstar == 0 { lstar = try vcpu.msr(Self.msrLSTAR) }
            announcedUserSpace = true
            handler.userSpaceStarted(try VCPUSnapshot.capture(vcpu, registers: GeneralRegisters(regs), sregs: sregs,
                                                              privilegeLevel: 3, systemCallEntry: lstar), memory: memory)
        }
    }

    /// Handles KVM_EXIT_DEBUG. Returns false when the event is not the assistant's.
    func handleDebug(_ event: DebugEvent, vcpu: VirtualCPU) throws(VMMError) -> Bool {
        try mappingErrors { () throws(KVMError) -> Bool in
            if steppingOverGate {
                steppingOverGate = false
                try vcpu.setGuestDebug(hardwareBreakpoints: gates)
                return true
            }
            var regs = try vcpu.registers()
            guard let gate = gates.firstIndex(of: regs.rip) else { return false }
            var sregs = try vcpu.specialRegisters()
            let space = AddressSpace(memory: memory, cr3: sregs.cr3, cr4: sregs.cr4)
            // Exception frame: [error code,] rip, cs, rflags, rsp, ss. #BP pushes no error code.
            let vector = gateVectors[gate]
            let hasErrorCode = vector != Self.vectorBreakpoint
            guard let words = try? space.readWords(at: GuestVirtualAddress(regs.rsp), count: ExceptionFrame.wordCount(hasErrorCode: hasErrorCode)),
                  let frame = ExceptionFrame(words, hasErrorCode: hasErrorCode) else {
                // The guest kernel's stack is not readable: not ours to interpret; the guest goes on.
                try passThrough(vcpu)
                return true
            }
            let (rip, cs, rflags, rsp) = (frame.rip, frame.cs, frame.rflags, frame.rsp)
            func userState() throws(KVMError) -> VCPUSnapshot {
                let user = frame.interruptedRegisters(GeneralRegisters(regs), breakpoint: vector == Self.vectorBreakpoint)
                return try VCPUSnapshot.capture(vcpu, registers: user, sregs: sregs, privilegeLevel: 3, systemCallEntry: lstar)
            }
            if cs & 3 == 3 { sawUserSpace = true }
            if cs & 3 == 3, let handler = trapHandler, !announcedUserSpace {
                announcedUserSpace = true
                handler.userSpaceStarted(try userState(), memory: memory)
            }
            if vector != Self.vectorBreakpoint {
                // A frame whose rip is a kernel address can only be a `syscall` left at CPL3:
                // re-read LSTAR then (it is per CPU and set late in boot), not on every fault.
                if lstar == 0 || (rip != lstar && rip >= 0xFFFF_8000_0000_0000) { lstar = try vcpu.msr(Self.msrLSTAR) }
                // A `syscall` from user mode that the host left at CPL3: finish it as the CPU
                // would, if a `syscall` instruction really started it (a user `jmp` did not).
                if rip == lstar && cs & 3 == 3, var host = fixups {
                    let completed = try host.systemCalls.complete(vcpu: vcpu, regs: &regs, sregs: &sregs, frameRIP: rip, frameCS: cs,
                                                                  frameRFLAGS: rflags, frameRSP: rsp, lstar: lstar, memory: memory)
                    fixups = host
                    if completed {
                        statistics.syscallsCompleted += 1
                        return true
                    }
                    statistics.systemCallEntriesRefused += 1
                }
            }
            if cs & 3 == 3, let handler = trapHandler, vector != Self.vectorGeneralProtection {
                // #BP is a trap (rip after the int3); a fetch fault reports the faulting address.
                var trap = GuestTrap(state: try userState(), fsBase: sregs.fs.base,
                                     errorCode: frame.errorCode, faultAddress: sregs.cr2)
                let owned = vector == Self.vectorBreakpoint ? handler.userBreakpoint(&trap, memory: memory)
                    : handler.userFetchFault(&trap, memory: memory)
                if owned {
                    try returnToUser(trap.resume, vcpu: vcpu, sregs: &sregs, exception: trap.exception)
                    statistics.userTrapsHandled += 1
                    return true
                }
            }
            try passThrough(vcpu)
            return true
        }
    }

    /// A genuine fault: let the guest handle it. The hardware breakpoint would fire again (RF is
    /// not honoured here), so single-step the first handler instruction.
    private func passThrough(_ vcpu: VirtualCPU) throws(KVMError) {
        steppingOverGate = true
        statistics.faultsPassedThrough += 1
        try vcpu.setGuestDebug(hardwareBreakpoints: [], singleStep: true)
    }

    /// Resumes a thread stopped at a gate entry directly in user mode with `registers`, as if the
    /// exception had never been delivered: no guest kernel code runs. With `exception`, the thread
    /// takes that exception there instead (delivered by KVM through the guest's IDT; CR2 set for #PF).
    private func returnToUser(_ registers: GeneralRegisters, vcpu: VirtualCPU, sregs: inout kvm_sregs,
                              exception: InjectedException? = nil) throws(KVMError) {
        sregs.cs = X86Segments.code64(selector: X86Segments.userCode, dpl: 3)
        sregs.ss = X86Segments.data(selector: X86Segments.userData, dpl: 3)
        if let address = exception?.faultAddress { sregs.cr2 = address }
        try vcpu.setSpecialRegisters(sregs)
        try vcpu.setRegisters(kvm_regs(registers))
        if let exception {
            try vcpu.injectException(vector: exception.vector, errorCode: exception.errorCode)
            statistics.exceptionsInjected += 1
        }
    }

    /// Handles a write to `KernelHookPort.port`. Returns false when the write is not a hook's
    /// (the device bus gets it then).
    func handleKernelHook(vcpu: VirtualCPU) throws(VMMError) -> Bool {
        guard let handler = trapHandler else { return false }
        return try mappingErrors { () throws(KVMError) -> Bool in
            var regs = try vcpu.registers()
            let sregs = try vcpu.specialRegisters()
            guard sregs.cs.dpl == 0 else { return false }
            // Every host reports the `out` with RIP already past it.
            regs.rip &-= UInt64(KernelHookPort.instruction.count)
            let state = try VCPUSnapshot.capture(vcpu, registers: GeneralRegisters(regs), sregs: sregs, privilegeLevel: 0,
                                                 systemCallEntry: lstar)
            var trap = GuestTrap(state: state, fsBase: sregs.fs.base)
            guard handler.kernelHook(&trap, memory: memory) else { return false }
            try vcpu.setRegisters(kvm_regs(trap.resume))
            statistics.kernelHooksHandled += 1
            return true
        }
    }

    /// Handles KVM_EXIT_INTERNAL_ERROR from the instruction emulator: the host's fix-ups repair
    /// what they know (on kvm_pvm: x87 control instructions, the guest kernel's own `int3`, which
    /// it uses for its self-test and live text patching); anything else is a precise report.
    func handleEmulationFailure(suberror: UInt32, data: [UInt64], bytes: [UInt8], vcpu: VirtualCPU) throws(VMMError) {
        let unhandled: String? = try mappingErrors { () throws(KVMError) -> String? in
            var regs = try vcpu.registers()
            let sregs = try vcpu.specialRegisters()
            switch try fixups?.repair(bytes, regs: &regs, sregs: sregs, vcpu: vcpu) {
            case .x87Emulated?:
                statistics.instructionsEmulated += 1
                return nil
            case .breakpointReinjected?:
                statistics.breakpointsReinjected += 1
                return nil
            case nil: break
            }
            return EmulationReport.describe(suberror: suberror, data: data, bytes: bytes, regs: regs, sregs: sregs, vcpu: vcpu.id)
        }
        if let unhandled { throw .unhandledGuestEvent(unhandled) }
    }

    /// Runs `body`, wrapping its KVM failure in `VMMError`.
    private func mappingErrors<T>(_ body: () throws(KVMError) -> T) throws(VMMError) -> T {
        do {
            return try body()
        } catch {
            throw .kvm(error)
        }
    }
}
