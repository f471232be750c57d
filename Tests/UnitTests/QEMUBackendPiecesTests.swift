import GuestMemory
import QEMUBackend
import Testing
import X86

/// The pure pieces of the QEMU backend: where QEMU puts RAM, the gate's first instruction, the
/// exception frame and IDT gates.
@Suite struct QEMUBackendPiecesTests {
    @Test func placesRAMAsQEMUsMachinesDo() {
        #expect(QEMURAMLayout.extents(ramBytes: 512 << 20, machine: "pc-i440fx-7.2") == [GuestRAMExtent(start: 0, size: 512 << 20)])
        #expect(QEMURAMLayout.extents(ramBytes: 4 << 30, machine: "pc") ==
                [GuestRAMExtent(start: 0, size: 0xC000_0000), GuestRAMExtent(start: 1 << 32, size: (4 << 30) - 0xC000_0000)])
        #expect(QEMURAMLayout.extents(ramBytes: 3 << 30, machine: "pc-q35-7.2") ==
                [GuestRAMExtent(start: 0, size: 0x8000_0000), GuestRAMExtent(start: 1 << 32, size: 1 << 30)])
        #expect(QEMURAMLayout.extents(ramBytes: 2 << 30, machine: "q35") == [GuestRAMExtent(start: 0, size: 2 << 30)])
    }

    @Test func findsTheSharedRAMMapping() {
        let maps = """
            55d0c8a00000-55d0c8e00000 r-xp 00000000 00:21 123  /usr/bin/qemu-system-x86_64
            7ff46bfff000-7ff48bfff000 rw-p 00000000 00:00 0
            7ff48bfff000-7ff4abfff000 rw-s 00000000 00:01 5797  /memfd:memory-backend-memfd (deleted)
            7ff4abfff000-7ff4acfff000 rw-s 00000000 00:01 5798  /memfd:other (deleted)
            """
        #expect(QEMURAMLayout.sharedRAMRange(in: maps, bytes: 512 << 20) == "7ff48bfff000-7ff4abfff000")
        #expect(QEMURAMLayout.sharedRAMRange(in: maps, bytes: 1 << 30) == nil)
        // Private anonymous RAM is not shared: none.
        #expect(QEMURAMLayout.sharedRAMRange(in: "7ff46bfff000-7ff48bfff000 rw-p 00000000 00:00 0", bytes: 512 << 20) == nil)
    }

    /// QEMU's default RAM block: the one private anonymous mapping of the RAM's size (as measured).
    @Test func findsThePrivateRAMBlock() {
        let maps = [
            "7f63ae800000-7f63afc9c000 r--p 00000000 fe:00 5374174                    /work/qemu-try/initramfs.cpio",
            "7f63afe00000-7f63cfe00000 rw-p 00000000 00:00 0",
            "7f63d0000000-7f640ffff000 rwxp 00000000 00:00 0",
        ].joined(separator: "\n")
        #expect(QEMURAMLayout.privateRAMStart(in: maps, bytes: 512 << 20) == 0x7F63_AFE0_0000)
        // Two candidates: ambiguous, none chosen.
        #expect(QEMURAMLayout.privateRAMStart(in: maps + "\n7f0000000000-7f0020000000 rw-p 00000000 00:00 0", bytes: 512 << 20) == nil)
        // A file-backed mapping of that size is not RAM.
        #expect(QEMURAMLayout.privateRAMStart(in: "7f63afe00000-7f63cfe00000 rw-p 00000000 fe:00 12 /x", bytes: 512 << 20) == nil)
    }

    /// Linux 6.1's #BP and #PF entries as read from the guest: `nopl (%rax)` (an alternative for
    /// `clac`), then `cld`.
    @Test func decodesTheGateEntriesLinuxStartsWith() {
        #expect(GateEntryInstruction([0x0F, 0x1F, 0x00, 0xFC, 0x6A, 0xFF]) == GateEntryInstruction(length: 3, clearedFlags: 0))
        #expect(GateEntryInstruction([0xF3, 0x0F, 0x1E, 0xFA])?.length == 4)
        #expect(GateEntryInstruction([0x0F, 0x01, 0xCA]) == GateEntryInstruction(length: 3, clearedFlags: 1 << 18))
        #expect(GateEntryInstruction([0xFC])?.clearedFlags == 1 << 10)
        #expect(GateEntryInstruction([0x0F, 0x1F, 0x44, 0x00, 0x00])?.length == 5)
        #expect(GateEntryInstruction([0x66, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00])?.length == 9)
        #expect(GateEntryInstruction([0x0F, 0x1F, 0x80, 0, 0, 0, 0])?.length == 7)
        #expect(GateEntryInstruction([0x55]) == nil)
        #expect(GateEntryInstruction([0x0F, 0x1F, 0x08]) == nil)   // /1 is not a NOP
        #expect(GateEntryInstruction([]) == nil)
    }

    @Test func decodesExceptionFramesAndGates() {
        let withCode = ExceptionFrame([4, 0x40_1000, 0x33, 0x246, 0x7FFF_0000, 0x2B], hasErrorCode: true)
        #expect(withCode?.errorCode == 4 && withCode?.rip == 0x40_1000 && withCode?.fromUserMode == true && withCode?.ss == 0x2B)
        let without = ExceptionFrame([0xFFFF_FFFF_8100_0000, 0x10, 0x2, 0xFFFF_C900_0000_0000, 0x18], hasErrorCode: false)
        #expect(without?.errorCode == nil && without?.fromUserMode == false)
        #expect(ExceptionFrame([1, 2, 3], hasErrorCode: false) == nil)
        // The gate of 0xffffffff8f600ba0 (present, DPL 3 interrupt gate), as read from the guest's IDT.
        let low: UInt64 = 0x8F60_EE00_0010_0BA0, high: UInt64 = 0xFFFF_FFFF
        #expect(IDTGate.handler(low: low, high: high) == 0xFFFF_FFFF_8F60_0BA0)
        #expect(IDTGate.handler(low: low & ~(1 << 47), high: high) == nil)
    }
}
