import CKVM
import KVM
import KVMState
import Testing

/// Measures which state ioctls this host's KVM answers (each get, then a set of what was got)
/// and prints the table docs/host-notes.md carries. Only what every KVM has is asserted.
@Suite(.serialized) struct KVMStateHostSupportTests {
    struct Row {
        let ioctl: String
        let get: String
        let set: String
    }

    static func outcome(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "works"
        } catch let error as KVMError {
            return "refused (errno \(error.errno.map(String.init) ?? "?"))"
        } catch {
            return "fails: \(error)"
        }
    }

    static func probe<T>(_ name: String, get: () throws -> T, set: (T) throws -> Void) -> Row {
        var value: T?
        let got = outcome { value = try get() }
        let put = value.map { v in outcome { try set(v) } } ?? "not tried"
        return Row(ioctl: name, get: got, set: put)
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func measureEveryStateIoctl() throws {
        let guest = try BareGuest(irqchip: true)
        try guest.load(code: [0xE6, 0x80, 0xEB, 0xFE])   // out 0x80, al; jmp $
        _ = try guest.run()
        let vcpu = guest.vcpu, vm = guest.vm
        let host = HostStateFacts(kvm: guest.kvm)
        let msrs = try vcpu.msrs(host.msrIndices)
        var rows = [
            Self.probe("KVM_GET/SET_REGS", get: vcpu.registers, set: vcpu.setRegisters),
            Self.probe("KVM_GET/SET_SREGS", get: vcpu.specialRegisters, set: vcpu.setSpecialRegisters),
            Self.probe("KVM_GET_CPUID2 / SET_CPUID2", get: vcpu.cpuid, set: vcpu.setCPUID),
            Row(ioctl: "KVM_GET_MSR_INDEX_LIST", get: host.msrIndexListRefusal ?? "works: \(host.msrIndices.count) MSRs",
                set: "-"),
            Row(ioctl: "KVM_GET/SET_MSRS (whole list in one call)", get: "\(msrs.count) of \(host.msrIndices.count) read",
                set: "\((try? vcpu.setMSRs(msrs)) ?? -1) of \(msrs.count) written"),
            Self.probe("KVM_GET_XSAVE2 (size \(host.xsave2Size.map(String.init) ?? "none")) / SET_XSAVE",
                  get: { try vcpu.xsave(size: host.xsave2Size) }, set: { try vcpu.setXSAVE($0, size: host.xsave2Size) }),
            Self.probe("KVM_GET/SET_XSAVE", get: { try vcpu.xsave(size: nil) }, set: { try vcpu.setXSAVE($0, size: nil) }),
            Self.probe("KVM_GET/SET_FPU", get: vcpu.fpu, set: vcpu.setFPU),
            Self.probe("KVM_GET/SET_XCRS", get: vcpu.extendedControlRegisters, set: vcpu.setExtendedControlRegisters),
            Self.probe("KVM_GET/SET_LAPIC", get: vcpu.localAPIC, set: vcpu.setLocalAPIC),
            Self.probe("KVM_GET/SET_VCPU_EVENTS", get: vcpu.events, set: vcpu.setEvents),
            Self.probe("KVM_GET/SET_DEBUGREGS", get: vcpu.debugRegisters, set: vcpu.setDebugRegisters),
            Self.probe("KVM_GET/SET_MP_STATE", get: vcpu.mpState, set: vcpu.setMPState),
            Self.probe("KVM_GET/SET_TSC_KHZ (same value)", get: vcpu.tscKHz, set: vcpu.setTSCKHz),
            Self.probe("KVM_SET_TSC_KHZ (half)", get: vcpu.tscKHz, set: { try vcpu.setTSCKHz($0 / 2) }),
        ]
        for chip in IRQChipID.allCases {
            rows.append(Self.probe("KVM_GET/SET_IRQCHIP(\(chip))", get: { try vm.irqChip(chip) }, set: vm.setIRQChip))
        }
        rows.append(Self.probe("KVM_GET/SET_PIT2", get: vm.pitState, set: vm.setPITState))
        rows.append(Self.probe("KVM_GET/SET_CLOCK", get: { try vm.clock().clock }, set: { try vm.setClock(nanoseconds: $0) }))

        print("| ioctl | get | set |\n|---|---|---|")
        for row in rows { print("| \(row.ioctl) | \(row.get) | \(row.set) |") }
        let unwritable: [String] = msrs.filter { entry in (try? vcpu.setMSRs([entry])) != 1 }
            .map { entry in "0x" + String(entry.index, radix: 16) }
        print("MSRs read but not written back: \(unwritable.isEmpty ? "none" : unwritable.joined(separator: ", "))")
        print("caps: XSAVE \(guest.kvm.checkExtension(CKVM_CAP_XSAVE)), XSAVE2 \(guest.kvm.checkExtension(CKVM_CAP_XSAVE2)), "
              + "TSC_CONTROL \(guest.kvm.checkExtension(CKVM_CAP_TSC_CONTROL)), ADJUST_CLOCK \(guest.kvm.checkExtension(CKVM_CAP_ADJUST_CLOCK))")

        // What every KVM must offer for the round trip.
        for row in rows.prefix(3) { #expect(row.get == "works" && row.set == "works", "\(row.ioctl)") }
    }
}
