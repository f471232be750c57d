import Boot
import CKVM
import Foundation
import GuestMemory
import KVM
import KVMState
import Testing

@testable import VMM

/// Capture a running tiny guest's KVM state and RAM, restore both into a NEW VM and vCPU, and
/// check the copy continues exactly where the original stopped (same exits, registers, memory).
@Suite(.serialized) struct KVMStateRoundTripTests {
    static let counter: UInt64 = 0x30_0000
    static let xmmPattern: [UInt8] = (0..<16).map { UInt8(0xA0 + $0) }

    /// Loads XMM3 from [counter+0x100] and wipes that memory; counts in RCX and in memory
    /// ([counter] = RCX, [counter+8] += RCX), sends each count to port 0x80; after 20 stores XMM3
    /// at [counter+0x20] and halts. R15 holds a constant nobody touches. So the final XMM3 store
    /// shows the SSE register itself travelled.
    static let countingProgram: [UInt8] = [
        0x31, 0xC9,                                 // xor ecx, ecx
        0xBB, 0x00, 0x00, 0x30, 0x00,               // mov ebx, 0x300000
        0x49, 0xBF, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // mov r15, 0x1122334455667788
        0xF3, 0x0F, 0x6F, 0x9B, 0x00, 0x01, 0x00, 0x00,                 // movdqu xmm3, [rbx+0x100]
        0x48, 0xC7, 0x83, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // mov qword [rbx+0x100], 0
        0x48, 0xC7, 0x83, 0x08, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // mov qword [rbx+0x108], 0
        // loop (offset 47):
        0x48, 0xFF, 0xC1,                           // inc rcx
        0x48, 0x89, 0x0B,                           // mov [rbx], rcx
        0x48, 0x01, 0x4B, 0x08,                     // add [rbx+8], rcx
        0x89, 0xC8,                                 // mov eax, ecx
        0xE6, 0x80,                                 // out 0x80, al
        0x48, 0x83, 0xF9, 0x14,                     // cmp rcx, 20
        0x75, 0xEC,                                 // jne loop
        0xF3, 0x0F, 0x7F, 0x5B, 0x20,               // movdqu [rbx+0x20], xmm3
        0xF4,                                       // hlt
    ]

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func countingGuestContinuesInANewVM() throws {
        let original = try TinyGuest(code: Self.countingProgram)
        try original.memory.write(Self.xmmPattern, at: GuestPhysicalAddress(Self.counter + 0x100))
        var sregs = try original.vcpu.specialRegisters()
        sregs.cr4 |= 0x600   // OSFXSR | OSXMMEXCPT: SSE allowed
        try original.vcpu.setSpecialRegisters(sregs)

        for expected in 1...7 { #expect(try Self.nextOut(original) == UInt8(expected)) }

        let host = HostStateFacts(kvm: original.kvm)
        let (captured, captureRefusals) = try VMState.capture(vm: original.vm, vcpus: [original.vcpu], host: host)
        for r in captureRefusals { print("KVMState capture on this host: refused \(r)") }
        #expect(captured.vcpus.count == 1)
        #expect(captured.picMaster == nil && captured.pit == nil)   // no in-kernel irqchip here
        #expect(captured.vcpus[0].localAPIC == nil)
        #expect(captured.vcpus[0].msrs.contains { $0.index == 0x10 }, "the TSC MSR is captured")
        let ram = Self.copyRAM(original.memory)

        // Through the encoding, as a snapshot file would carry it.
        let decoded = try KVMStateFormat.decode(KVMStateFormat.encode(captured))
        #expect(decoded == captured)

        let copy = try BareGuest(memorySize: original.memory.totalSize, irqchip: false)
        copy.copyIn(ram: ram)
        let restoreRefusals = try decoded.restore(vm: copy.vm, vcpus: [copy.vcpu], host: host)
        for r in restoreRefusals { print("KVMState restore on this host: refused \(r)") }

        // Both run on: same next exit, same registers, same memory.
        #expect(try Self.nextOut(original) == 8)
        #expect(try Self.nextOut(copy) == 8)
        let a = try original.vcpu.registers(), b = try copy.vcpu.registers()
        #expect(b.rcx == 8 && b.rip == a.rip && b.rbx == Self.counter && b.r15 == 0x1122_3344_5566_7788)
        #expect(b.rflags == a.rflags)
        #expect(try copy.memory.load(UInt64.self, at: GuestPhysicalAddress(Self.counter)) == 8)
        #expect(try copy.memory.load(UInt64.self, at: GuestPhysicalAddress(Self.counter + 8)) == 36)
        #expect(try copy.memory.read(at: GuestPhysicalAddress(Self.counter + 0x100), count: 16) == [UInt8](repeating: 0, count: 16))
        #expect(try copy.vcpu.specialRegisters().efer == original.vcpu.specialRegisters().efer)

        for expected in 9...20 { #expect(try Self.nextOut(copy) == UInt8(expected)) }
        guard case .halt = try copy.run() else { Issue.record("expected hlt after 20"); return }
        #expect(try copy.memory.load(UInt64.self, at: GuestPhysicalAddress(Self.counter + 8)) == 210)
        #expect(try copy.vcpu.registers().rcx == 20)
        #expect(try copy.memory.read(at: GuestPhysicalAddress(Self.counter + 0x20), count: 16) == Self.xmmPattern,
                "XMM3, loaded before the snapshot, stored by the restored guest")
    }

    /// With KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2: the guest programs the PIT, the PIC mask and
    /// an I/O APIC entry; the new VM gets them back, and its guest reads the restored PIC mask.
    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func irqchipAndPITTravelToANewVM() throws {
        let program: [UInt8] = [
            0xB0, 0x34, 0xE6, 0x43,                     // PIT channel 0: lobyte/hibyte, mode 2
            0xB0, 0x34, 0xE6, 0x40,                     // count low 0x34
            0xB0, 0x12, 0xE6, 0x40,                     // count high 0x12
            0xB0, 0xFB, 0xE6, 0x21,                     // PIC master IMR = 0xFB
            0xBB, 0x00, 0x00, 0xC0, 0xFE,               // mov ebx, 0xFEC00000 (I/O APIC)
            0xC7, 0x03, 0x10, 0x00, 0x00, 0x00,         // IOREGSEL = 0x10 (redirection entry 0, low)
            0xC7, 0x43, 0x10, 0x31, 0x00, 0x01, 0x00,   // IOWIN = vector 0x31, masked
            0xB0, 0xAA, 0xE6, 0x80,                     // out 0x80, 0xAA: set-up done
            0xE4, 0x21,                                 // in al, 0x21 (PIC master IMR)
            0xE6, 0x80,                                 // out 0x80, al
            0xEB, 0xFE,                                 // jmp $
        ]
        let original = try BareGuest(irqchip: true)
        try original.load(code: program)
        #expect(try Self.nextOut(original) == 0xAA)

        let host = HostStateFacts(kvm: original.kvm)
        let (captured, captureRefusals) = try VMState.capture(vm: original.vm, vcpus: [original.vcpu], host: host)
        for r in captureRefusals { print("KVMState capture with irqchip on this host: refused \(r)") }
        let master = try #require(captured.picMaster, "KVM_GET_IRQCHIP(PIC master)")
        let ioapic = try #require(captured.ioapic, "KVM_GET_IRQCHIP(IOAPIC)")
        let pit = try #require(captured.pit, "KVM_GET_PIT2")
        #expect(captured.picSlave != nil)
        #expect(captured.vcpus[0].localAPIC != nil)
        #expect(master.value.chip.pic.imr == 0xFB)
        #expect(Self.ioapicEntry0(ioapic.value) & 0x1_00FF == 0x1_0031)
        #expect(pit.value.channels.0.count == 0x1234)
        #expect(pit.value.channels.0.mode == 2)

        let decoded = try KVMStateFormat.decode(KVMStateFormat.encode(captured))
        let copy = try BareGuest(irqchip: true)
        copy.copyIn(ram: original.copyOutRAM())
        let restoreRefusals = try decoded.restore(vm: copy.vm, vcpus: [copy.vcpu], host: host)
        for r in restoreRefusals { print("KVMState restore with irqchip on this host: refused \(r)") }
        #expect(try copy.vm.irqChip(.picMaster).chip.pic.imr == 0xFB)
        #expect(try Self.ioapicEntry0(copy.vm.irqChip(.ioapic)) & 0x1_00FF == 0x1_0031)
        let restoredPIT = try copy.vm.pitState()
        #expect(restoredPIT.channels.0.count == 0x1234 && restoredPIT.channels.0.mode == 2)
        let lapicBefore = try #require(captured.vcpus[0].localAPIC).value
        let lapicAfter = try copy.vcpu.localAPIC()
        // The APIC ID, version, LVT LINT0 and spurious-vector registers came back.
        for offset in [0x20, 0x30, 0x350, 0xF0] {
            #expect(Self.lapicRegister(lapicAfter, offset) == Self.lapicRegister(lapicBefore, offset), "LAPIC 0x\(String(offset, radix: 16))")
        }
        // kvmclock continues from the captured value (not from the new VM's zero).
        let capturedClock = try #require(captured.clockNanoseconds)
        let restoredClock = try copy.vm.clock().clock
        #expect(restoredClock >= capturedClock && restoredClock < capturedClock + 5_000_000_000)
        // The guest in the new VM reads the restored mask from the in-kernel PIC.
        #expect(try Self.nextOut(copy) == 0xFB)
    }

    /// Two vCPUs with an in-kernel irqchip: the application processor, never started, is
    /// waiting for INIT/SIPI; the copy's AP is in the same MP state with the same APIC ID, and
    /// the BSP runs on.
    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func aWaitingApplicationProcessorTravelsToo() throws {
        let original = try BareGuest(irqchip: true, vcpuCount: 2)
        try original.load(code: [0xB0, 0x01, 0xE6, 0x80, 0xB0, 0x02, 0xE6, 0x80, 0xEB, 0xFE])
        try original.vcpus[1].setCPUID(try original.vcpu.cpuid())
        #expect(try Self.nextOut(original) == 1)
        let host = HostStateFacts(kvm: original.kvm)
        let (captured, _) = try VMState.capture(vm: original.vm, vcpus: original.vcpus, host: host)
        #expect(captured.vcpus.map(\.id) == [0, 1])
        let apState = try #require(captured.vcpus[1].mpState)
        #expect(apState != UInt32(KVM_MP_STATE_RUNNABLE), "an AP that got no SIPI is not runnable")

        let copy = try BareGuest(irqchip: true, vcpuCount: 2)
        copy.copyIn(ram: original.copyOutRAM())
        let refusals = try KVMStateFormat.decode(KVMStateFormat.encode(captured))
            .restore(vm: copy.vm, vcpus: copy.vcpus, host: host)
        #expect(refusals.isEmpty, "\(refusals)")
        #expect(try copy.vcpus[1].mpState().mp_state == apState)
        let apicID = Self.lapicRegister(try copy.vcpus[1].localAPIC(), 0x20) >> 24
        #expect(apicID == 1)
        #expect(try Self.nextOut(copy) == 2)
    }

    /// Restoring into a VM made differently is refused with a typed error, not a crash.
    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func restoreIntoAMismatchedVMIsATypedError() throws {
        let original = try BareGuest(irqchip: true)
        try original.load(code: [0xE6, 0x80, 0xEB, 0xFE])
        #expect(try Self.nextOut(original) != nil)
        let host = HostStateFacts(kvm: original.kvm)
        let (state, _) = try VMState.capture(vm: original.vm, vcpus: [original.vcpu], host: host)

        let plain = try BareGuest(irqchip: false)
        #expect {
            _ = try state.restore(vm: plain.vm, vcpus: [plain.vcpu], host: host)
        } throws: { error in
            guard case .missingDevice(.irqChip(.picMaster)) = error as? KVMStateError else { return false }
            return true
        }
        #expect {
            _ = try state.restore(vm: plain.vm, vcpus: [], host: host)
        } throws: { error in
            guard case .vcpuMismatch = error as? KVMStateError else { return false }
            return true
        }
    }

    /// An MSR the target refuses is reported by index, and the MSRs after it are still written
    /// (KVM_SET_MSRS stops at the first refusal; restore goes on past it).
    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func aRefusedMSRIsReportedAndTheRestStillRestored() throws {
        let original = try BareGuest(irqchip: false)
        try original.load(code: [0xE6, 0x80, 0xEB, 0xFE])
        let host = HostStateFacts(kvm: original.kvm)
        var (state, _) = try VMState.capture(vm: original.vm, vcpus: [original.vcpu], host: host)
        let bogus: UInt32 = 0x2FF0_0000   // no such MSR on any x86 CPU
        let kernelGSBase: UInt32 = 0xC000_0102
        state.vcpus[0].msrs.removeAll { $0.index == kernelGSBase }
        state.vcpus[0].msrs.insert(contentsOf: [MSREntry(index: bogus, value: 5),
                                                MSREntry(index: kernelGSBase, value: 0xFFFF_8880_1234_5000)], at: 0)

        let copy = try BareGuest(irqchip: false)
        let refusals = try state.restore(vm: copy.vm, vcpus: [copy.vcpu], host: host)
        #expect(refusals.contains(StateRefusal(part: .msr(bogus), vcpu: 0, reason: "KVM_SET_MSRS does not write 0x5")),
                "\(refusals)")
        #expect(try copy.vcpu.msrs([kernelGSBase]).first?.value == 0xFFFF_8880_1234_5000)
    }

    static func nextOut(_ guest: some RunnableGuest) throws -> UInt8? {
        let exit = try guest.run()
        guard case .portIO(let io) = exit, io.isWrite, io.port == 0x80 else {
            Issue.record("expected out 0x80, got \(exit)")
            return nil
        }
        return io.data.first
    }

    static func copyRAM(_ memory: GuestMemory) -> [[UInt8]] {
        memory.regions.map { region in
            Array(UnsafeRawBufferPointer(start: region.hostAddress, count: Int(region.size)))
        }
    }

    /// Redirection entry 0 of an I/O APIC state (Swift does not import the array of unions):
    /// kvm_ioapic_state is base_address u64, ioregsel, id, irr, pad (u32 each), redirtbl[24] u64.
    static func ioapicEntry0(_ chip: kvm_irqchip) -> UInt64 {
        withUnsafeBytes(of: chip.chip) { $0.load(fromByteOffset: 24, as: UInt64.self) }
    }

    static func lapicRegister(_ lapic: kvm_lapic_state, _ offset: Int) -> UInt32 {
        withUnsafeBytes(of: lapic.regs) { $0.load(fromByteOffset: offset, as: UInt32.self) }
    }
}
