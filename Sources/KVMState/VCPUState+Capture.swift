import CKVM
import Glibc
import KVM

extension VCPUState {
    /// Reads the whole state of a vCPU that is not running (its thread is outside KVM_RUN).
    /// Order as in Firecracker/QEMU: MP state first (reading it may accept pending INIT/SIPI
    /// into the LAPIC), events last. `inKernelLAPIC` false (a VM without KVM_CREATE_IRQCHIP)
    /// skips the local APIC, which KVM then answers with EINVAL.
    public static func capture(_ vcpu: VirtualCPU, host: HostStateFacts, inKernelLAPIC: Bool = true) throws(KVMStateError)
        -> (state: VCPUState, refusals: [StateRefusal]) {
        var refusals: [StateRefusal] = []
        let n = vcpu.id
        let mp = try attempt(.mpState, vcpu: n, &refusals) { () throws(KVMError) in try vcpu.mpState().mp_state }
        let regs = try required(.registers) { () throws(KVMError) in try vcpu.registers() }
        let sregs = try required(.specialRegisters) { () throws(KVMError) in try vcpu.specialRegisters() }
        var floatingPoint: FloatingPointState?
        if host.hasXSAVE {
            floatingPoint = try attempt(.xsave, vcpu: n, &refusals) { () throws(KVMError) in
                .xsave(try vcpu.xsave(size: host.xsave2Size))
            }
        }
        if floatingPoint == nil {
            floatingPoint = try attempt(.fpu, vcpu: n, &refusals) { () throws(KVMError) in
                .fpu(RawKVMStruct(try vcpu.fpu()))
            }
        }
        let xcrs = try attempt(.extendedControlRegisters, vcpu: n, &refusals) { () throws(KVMError) in
            RawKVMStruct(try vcpu.extendedControlRegisters())
        }
        let debug = try attempt(.debugRegisters, vcpu: n, &refusals) { () throws(KVMError) in
            RawKVMStruct(try vcpu.debugRegisters())
        }
        let lapic = inKernelLAPIC ? try attempt(.localAPIC, vcpu: n, &refusals) { () throws(KVMError) in
            RawKVMStruct(try vcpu.localAPIC())
        } : nil
        let tsc = try attempt(.tscKHz, vcpu: n, &refusals) { () throws(KVMError) in try vcpu.tscKHz() }
        if let why = host.msrIndexListRefusal {
            refusals.append(StateRefusal(part: .msrIndexList, vcpu: nil, reason: why))
        }
        let msrs = try readableMSRs(vcpu, host.msrIndices, &refusals)
        let cpuid = try required(.cpuid) { () throws(KVMError) in try vcpu.cpuid() }
        let events = try attempt(.events, vcpu: n, &refusals) { () throws(KVMError) in
            RawKVMStruct(try vcpu.events())
        }
        let state = VCPUState(
            id: UInt32(truncatingIfNeeded: n), cpuid: cpuid, registers: RawKVMStruct(regs),
            specialRegisters: RawKVMStruct(sregs), msrs: msrs, floatingPoint: floatingPoint,
            extendedControlRegisters: xcrs, localAPIC: lapic, events: events, debugRegisters: debug,
            mpState: mp, tscKHz: tsc)
        return (state, refusals)
    }

    /// The MSRs of `indices` this vCPU reads back. KVM_GET_MSRS stops at the first MSR it cannot
    /// read; that one is recorded as refused and reading continues after it.
    static func readableMSRs(_ vcpu: VirtualCPU, _ indices: [UInt32],
                             _ refusals: inout [StateRefusal]) throws(KVMStateError) -> [MSREntry] {
        var out: [MSREntry] = []
        var rest = indices[...]
        while let first = rest.first {
            let got = try attempt(.msr(first), vcpu: vcpu.id, &refusals) { () throws(KVMError) in
                try vcpu.msrs(Array(rest))
            }
            guard let got else { return out }  // the whole ioctl refused: recorded once
            out += got
            rest = rest.dropFirst(got.count)
            if let refused = rest.first {
                refusals.append(StateRefusal(part: .msr(refused), vcpu: vcpu.id, reason: "KVM_GET_MSRS does not read it"))
                rest = rest.dropFirst()
            }
        }
        return out
    }

    /// Puts the state into a fresh vCPU of a VM set up like the captured one (same irqchip and
    /// PIT choice; RAM restored separately). CPUID first (KVM checks EFER and XCR0 against it),
    /// then TSC frequency, SREGS before MSRs, LAPIC after both (APIC base), the TSC deadline again
    /// after the LAPIC, events after LAPIC.
    /// Returns what the host refused to take; throws if a required part fails.
    public func restore(into vcpu: VirtualCPU, host: HostStateFacts) throws(KVMStateError) -> [StateRefusal] {
        var refusals: [StateRefusal] = []
        let n = vcpu.id
        try required(.cpuid) { () throws(KVMError) in try vcpu.setCPUID(cpuid) }
        if let tscKHz, let current = try? vcpu.tscKHz(), current != tscKHz {
            _ = try attempt(.tscKHz, vcpu: n, &refusals) { () throws(KVMError) in try vcpu.setTSCKHz(tscKHz) }
        }
        try required(.specialRegisters) { () throws(KVMError) in try vcpu.setSpecialRegisters(specialRegisters.value) }
        try restoreMSRs(vcpu, &refusals)
        try required(.registers) { () throws(KVMError) in try vcpu.setRegisters(registers.value) }
        switch floatingPoint {
        case .xsave(let area)?:
            _ = try attempt(.xsave, vcpu: n, &refusals) { () throws(KVMError) in
                try vcpu.setXSAVE(area, size: host.xsave2Size)
            }
        case .fpu(let fpu)?:
            _ = try attempt(.fpu, vcpu: n, &refusals) { () throws(KVMError) in try vcpu.setFPU(fpu.value) }
        case nil: break
        }
        if let xcrs = extendedControlRegisters {
            _ = try attempt(.extendedControlRegisters, vcpu: n, &refusals) { () throws(KVMError) in
                try vcpu.setExtendedControlRegisters(xcrs.value)
            }
        }
        if let lapic = localAPIC {
            do { try vcpu.setLocalAPIC(lapic.value) } catch {
                if error.errno == ENXIO { throw .missingDevice(.localAPIC) }
                throw .kvm(.localAPIC, error)
            }
            // KVM drops a TSC-deadline write while the LAPIC timer is not in TSC-deadline mode
            // (as it was before the LAPIC above): write the deadline again, or the guest's armed
            // timer never fires and a sleeping guest sleeps for ever.
            if let deadline = msrs.first(where: { $0.index == Self.msrTSCDeadline }), deadline.value != 0 {
                _ = try attempt(.msr(Self.msrTSCDeadline), vcpu: n, &refusals) { () throws(KVMError) in
                    _ = try vcpu.setMSRs([deadline])
                }
            }
        }
        if let mpState {
            var m = kvm_mp_state()
            m.mp_state = mpState
            _ = try attempt(.mpState, vcpu: n, &refusals) { () throws(KVMError) in try vcpu.setMPState(m) }
        }
        if let events {
            _ = try attempt(.events, vcpu: n, &refusals) { () throws(KVMError) in try vcpu.setEvents(events.value) }
        }
        if let debugRegisters {
            _ = try attempt(.debugRegisters, vcpu: n, &refusals) { () throws(KVMError) in
                try vcpu.setDebugRegisters(debugRegisters.value)
            }
        }
        return refusals
    }

    /// IA32_TSC_DEADLINE.
    static let msrTSCDeadline: UInt32 = 0x6E0

    /// KVM_SET_MSRS stops at the first MSR it refuses: unless the vCPU already holds the saved
    /// value (kvm_pvm never writes MSR_KVM_POLL_CONTROL, which reads 0 on every vCPU), record
    /// it and go on after it.
    private func restoreMSRs(_ vcpu: VirtualCPU, _ refusals: inout [StateRefusal]) throws(KVMStateError) {
        var rest = msrs[...]
        while let first = rest.first {
            let written = try required(.msr(first.index)) { () throws(KVMError) in try vcpu.setMSRs(Array(rest)) }
            rest = rest.dropFirst(written)
            if let refused = rest.first {
                if (try? vcpu.msrs([refused.index]))?.first?.value != refused.value {
                    refusals.append(StateRefusal(part: .msr(refused.index), vcpu: vcpu.id,
                                                 reason: "KVM_SET_MSRS does not write 0x\(String(refused.value, radix: 16))"))
                }
                rest = rest.dropFirst()
            }
        }
    }
}
