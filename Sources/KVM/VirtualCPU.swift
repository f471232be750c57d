import CKVM
import Glibc

/// A vCPU file descriptor and its mapped kvm_run. Driven by one thread; `requestExit` may be
/// called from any thread.
// SAFETY: @unchecked Sendable: only the vCPU's own thread calls KVM_RUN and touches kvm_run; other threads only set immediate_exit (a byte KVM re-reads) through requestExit.
public final class VirtualCPU: @unchecked Sendable {
    public let id: Int
    let fd: Int32
    let runState: UnsafeMutablePointer<kvm_run>
    let runSize: Int

    init(id: Int, fd: Int32, run: UnsafeMutablePointer<kvm_run>, runSize: Int) {
        self.id = id; self.fd = fd; self.runState = run; self.runSize = runSize
    }

    deinit {
        // SAFETY: the mapping made in createVCPU, of runSize bytes; no other reference to it outlives this object.
        _ = ckvm_munmap(UnsafeMutableRawPointer(runState), runSize)
        _ = ckvm_close(fd)
    }

    // MARK: registers

    public func registers() throws(KVMError) -> kvm_regs {
        var r = kvm_regs()
        _ = try checked("KVM_GET_REGS", ckvm_ioctl_ptr(fd, CKVM_GET_REGS, &r))
        return r
    }

    public func setRegisters(_ regs: kvm_regs) throws(KVMError) {
        var r = regs
        _ = try checked("KVM_SET_REGS", ckvm_ioctl_ptr(fd, CKVM_SET_REGS, &r))
    }

    public func specialRegisters() throws(KVMError) -> kvm_sregs {
        var s = kvm_sregs()
        _ = try checked("KVM_GET_SREGS", ckvm_ioctl_ptr(fd, CKVM_GET_SREGS, &s))
        return s
    }

    public func setSpecialRegisters(_ sregs: kvm_sregs) throws(KVMError) {
        var s = sregs
        _ = try checked("KVM_SET_SREGS", ckvm_ioctl_ptr(fd, CKVM_SET_SREGS, &s))
    }

    public func fpu() throws(KVMError) -> kvm_fpu {
        var f = kvm_fpu()
        _ = try checked("KVM_GET_FPU", ckvm_ioctl_ptr(fd, CKVM_GET_FPU, &f))
        return f
    }

    public func setFPU(_ state: kvm_fpu) throws(KVMError) {
        var f = state
        _ = try checked("KVM_SET_FPU", ckvm_ioctl_ptr(fd, CKVM_SET_FPU, &f))
    }

    public func msr(_ index: UInt32) throws(KVMError) -> UInt64 {
        var m = ckvm_msr_one()
        m.nmsrs = 1
        m.entry.index = index
        // SAFETY: ckvm_msr_one is a kvm_msrs header with room for exactly the one entry nmsrs says.
        let n = try checked("KVM_GET_MSRS", ckvm_ioctl_ptr(fd, CKVM_GET_MSRS, &m))
        if n != 1 { throw .ioctl(name: "KVM_GET_MSRS(0x\(String(index, radix: 16)))", errno: EINVAL) }
        return m.entry.data
    }

    public func setMSR(_ index: UInt32, _ value: UInt64) throws(KVMError) {
        var m = ckvm_msr_one()
        m.nmsrs = 1
        m.entry.index = index
        m.entry.data = value
        // SAFETY: ckvm_msr_one is a kvm_msrs header with room for exactly the one entry nmsrs says.
        let n = try checked("KVM_SET_MSRS", ckvm_ioctl_ptr(fd, CKVM_SET_MSRS, &m))
        if n != 1 { throw .ioctl(name: "KVM_SET_MSRS(0x\(String(index, radix: 16)))", errno: EINVAL) }
    }

    public func setCPUID(_ entries: [CPUIDEntry]) throws(KVMError) {
        var table = ckvm_cpuid()
        let count = min(entries.count, Int(CKVM_MAX_CPUID_ENTRIES))
        table.nent = UInt32(count)
        // SAFETY: `entries` holds CKVM_MAX_CPUID_ENTRIES kvm_cpuid_entry2 and `count` is capped to that.
        withUnsafeMutableBytes(of: &table.entries) { raw in
            let out = raw.bindMemory(to: kvm_cpuid_entry2.self)
            for i in 0..<count { out[i] = entries[i].raw }
        }
        _ = try checked("KVM_SET_CPUID2", ckvm_ioctl_ptr(fd, CKVM_SET_CPUID2, &table))
    }

    /// The guest TSC frequency KVM uses for this vCPU, in kHz (KVM_GET_TSC_KHZ).
    public func tscKHz() throws(KVMError) -> UInt32 {
        UInt32(try checked("KVM_GET_TSC_KHZ", ckvm_ioctl_val(fd, CKVM_GET_TSC_KHZ, 0)))
    }

    public func localAPIC() throws(KVMError) -> kvm_lapic_state {
        var l = kvm_lapic_state()
        _ = try checked("KVM_GET_LAPIC", ckvm_ioctl_ptr(fd, CKVM_GET_LAPIC, &l))
        return l
    }

    public func setLocalAPIC(_ state: kvm_lapic_state) throws(KVMError) {
        var l = state
        _ = try checked("KVM_SET_LAPIC", ckvm_ioctl_ptr(fd, CKVM_SET_LAPIC, &l))
    }

    public func events() throws(KVMError) -> kvm_vcpu_events {
        var e = kvm_vcpu_events()
        _ = try checked("KVM_GET_VCPU_EVENTS", ckvm_ioctl_ptr(fd, CKVM_GET_VCPU_EVENTS, &e))
        return e
    }

    public func setEvents(_ events: kvm_vcpu_events) throws(KVMError) {
        var e = events
        _ = try checked("KVM_SET_VCPU_EVENTS", ckvm_ioctl_ptr(fd, CKVM_SET_VCPU_EVENTS, &e))
    }

    /// Queues an exception (vector, optional error code) for delivery at the next KVM_RUN.
    public func injectException(vector: UInt8, errorCode: UInt32? = nil) throws(KVMError) {
        var e = try events()
        e.exception.injected = 1
        e.exception.nr = vector
        e.exception.has_error_code = errorCode == nil ? 0 : 1
        e.exception.error_code = errorCode ?? 0
        e.flags = 0
        try setEvents(e)
    }

    /// Programs guest debugging: `hardwareBreakpoints` are up to four linear execute addresses.
    public func setGuestDebug(hardwareBreakpoints: [UInt64], singleStep: Bool = false) throws(KVMError) {
        var d = kvm_guest_debug()
        if hardwareBreakpoints.isEmpty && !singleStep {
            d.control = 0
        } else {
            d.control = CKVM_GUESTDBG_ENABLE
            if singleStep { d.control |= CKVM_GUESTDBG_SINGLESTEP }
            if !hardwareBreakpoints.isEmpty { d.control |= CKVM_GUESTDBG_USE_HW_BP }
            var dr7: UInt64 = 0
            // SAFETY: debugreg is 8 UInt64 (DR0-DR7); indices used are 0-3 (prefix(4)) and 7.
            withUnsafeMutableBytes(of: &d.arch.debugreg) { raw in
                let regs = raw.bindMemory(to: UInt64.self)
                for (i, address) in hardwareBreakpoints.prefix(4).enumerated() {
                    regs[i] = address
                    dr7 |= 1 << (UInt64(i) * 2)  // local enable, execute, length 1
                }
                regs[7] = dr7
            }
        }
        _ = try checked("KVM_SET_GUEST_DEBUG", ckvm_ioctl_ptr(fd, CKVM_SET_GUEST_DEBUG, &d))
    }

    // MARK: running

    /// Runs the vCPU until the next exit that needs user space.
    public func run() throws(KVMError) -> VCPUExit {
        let rc = ckvm_ioctl_val(fd, CKVM_RUN, 0)
        if rc < 0 {
            if -rc == EINTR || -rc == EAGAIN {
                // SAFETY: runState stays mapped for the life of this object; this thread owns kvm_run between KVM_RUNs.
                runState.pointee.immediate_exit = 0
                return .interrupted
            }
            throw .ioctl(name: "KVM_RUN", errno: -rc)
        }
        return decodeExit()
    }

    /// Makes the current or next KVM_RUN return `.interrupted` (pair with a signal to the vCPU thread).
    public func requestExit() {
        // SAFETY: a single-byte store into the live mapping; KVM reads it at KVM_RUN entry, racing at worst one extra exit.
        runState.pointee.immediate_exit = 1
    }

    /// Supplies the data for a port `in` exit; call before the next `run()`.
    public func completeIn(_ bytes: [UInt8]) {
        // SAFETY: only after a port `in` exit: KVM's io.data_offset area inside the mapping holds size x count bytes, the count the loop completes.
        let dst = ckvm_run_io_data(runState)!
        for (i, b) in bytes.enumerated() { dst[i] = b }
    }

    /// Supplies the data for an MMIO read exit.
    public func completeMMIORead(_ bytes: [UInt8]) {
        // SAFETY: mmio.data is 8 bytes and at most 8 are written (prefix(8)).
        withUnsafeMutableBytes(of: &runState.pointee.mmio.data) { raw in
            for (i, b) in bytes.prefix(8).enumerated() { raw[i] = b }
        }
    }

    private func decodeExit() -> VCPUExit {
        let r = runState.pointee
        switch Int32(r.exit_reason) {
        case KVM_EXIT_IO:
            let io = r.io
            let n = Int(io.size) * Int(io.count)
            var bytes: [UInt8] = []
            if io.direction == UInt8(KVM_EXIT_IO_OUT) {
                // SAFETY: for an `out` exit KVM placed size x count bytes at io.data_offset inside the mapping (within runSize).
                let src = ckvm_run_io_data(runState)!
                bytes = (0..<n).map { src[$0] }
            }
            return .portIO(PortAccess(isWrite: io.direction == UInt8(KVM_EXIT_IO_OUT), port: io.port,
                                      size: Int(io.size), count: Int(io.count), data: bytes))
        case KVM_EXIT_MMIO:
            let m = r.mmio
            var bytes: [UInt8] = []
            if m.is_write != 0 {
                // SAFETY: a copy of the 8-byte data array, capped at 8 whatever len says.
                bytes = withUnsafeBytes(of: m.data) { Array($0.prefix(Int(min(m.len, 8)))) }
            }
            return .mmio(MMIOAccess(address: m.phys_addr, isWrite: m.is_write != 0, length: Int(m.len), data: bytes))
        case KVM_EXIT_HLT: return .halt
        case KVM_EXIT_SHUTDOWN: return .shutdown
        case KVM_EXIT_DEBUG:
            // SAFETY: the exit reason is KVM_EXIT_DEBUG, so the run union holds kvm_debug_exit_arch.
            let d = ckvm_run_debug(runState)!.pointee
            return .debug(DebugEvent(exception: d.exception, pc: d.pc, dr6: d.dr6, dr7: d.dr7))
        case KVM_EXIT_INTERNAL_ERROR:
            let ie = r.internal
            let n = Int(min(ie.ndata, 16))
            // SAFETY: ie.data is 16 UInt64 and n is capped at 16.
            let data = withUnsafeBytes(of: ie.data) { raw in (0..<n).map { raw.load(fromByteOffset: $0 * 8, as: UInt64.self) } }
            var insn: [UInt8] = []
            // KVM_INTERNAL_ERROR_EMULATION with flag 1: data[1..] = insn length byte, then the bytes.
            if ie.suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION), n >= 2, data[0] & 1 == 1 {
                let bytes = data[1...].flatMap { v in (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
                let length = Int(bytes[0])
                insn = Array(bytes.dropFirst().prefix(min(length, bytes.count - 1)))
            }
            return .internalError(suberror: ie.suberror, data: data, instructionBytes: insn)
        case KVM_EXIT_FAIL_ENTRY: return .failEntry(reason: r.fail_entry.hardware_entry_failure_reason)
        case KVM_EXIT_SYSTEM_EVENT: return .systemEvent(type: r.system_event.type)
        case KVM_EXIT_INTR: return .interrupted
        default: return .other(reason: r.exit_reason)
        }
    }
}

extension VirtualCPU {
    /// Finishes what the last exit left in flight (an MMIO or port read's data, a string I/O
    /// instruction) without running guest code: KVM_RUN with `immediate_exit` set completes it and
    /// returns at once. Needed before the vCPU's state is saved (KVM's documented rule).
    public func completePendingOperations() throws(KVMError) {
        requestExit()
        switch try run() {
        case .interrupted: return
        default: throw .ioctl(name: "KVM_RUN (immediate exit) left the guest running", errno: EINVAL)
        }
    }
}
