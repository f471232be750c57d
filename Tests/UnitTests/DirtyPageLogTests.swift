import Boot
import GuestMemory
import KVM
import Testing

@testable import VMM

/// `DirtyPageLog` on a tiny guest. Besides the pages its code stores to, the guest's first run
/// writes the boot page tables: the CPU sets the accessed bit in the PML4, PDPT and page-directory
/// entries it walks, and the dirty bit in the 2 MiB leaf it stores through.
@Suite(.serialized) struct DirtyPageLogTests {
    private static let pml4 = BootLayout.pml4.rawValue >> 12
    private static let pdpt = BootLayout.pdpt.rawValue >> 12
    private static let pd0 = BootLayout.pageDirectories.rawValue >> 12   // covers the first GiB

    private func runToHalt(_ guest: TinyGuest) throws {
        let exit = try guest.run()
        guard case .halt = exit else { throw VMMError.unhandledGuestEvent("expected hlt, got \(exit)") }
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func guestAndHostWritesAreEachReportedOnce() throws {
        let guest = try TinyGuest(code: [
            0x48, 0xA3, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00,  // mov [0x200000], rax
            0x48, 0xA3, 0x08, 0x50, 0x34, 0x00, 0x00, 0x00, 0x00, 0x00,  // mov [0x345008], rax
            0xF4,                                                        // hlt
            0x48, 0xA3, 0x10, 0x00, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00,  // mov [0x300010], rax
            0xF4,                                                        // hlt
        ])
        let log = DirtyPageLog(vm: guest.vm, memory: guest.memory)
        #expect(throws: VMMError.self) { _ = try log.harvest() }   // not enabled yet
        try log.enable()
        try log.enable()                                          // idempotent

        try runToHalt(guest)
        let first = try log.harvest()
        #expect(first.frames == [Self.pml4, Self.pdpt, Self.pd0, 0x200, 0x345])

        let quiet = try log.harvest()
        #expect(quiet.frames == [])
        #expect(quiet.endedAt > first.endedAt)

        try guest.memory.write([1, 2, 3], at: GuestPhysicalAddress(0x40_0FFE))     // straddles two frames
        try guest.memory.store(UInt32(7), at: GuestPhysicalAddress(0x50_0000))
        try guest.memory.fill(0xAA, at: GuestPhysicalAddress(0x60_0000), count: 0x2000)
        #expect(try log.harvest().frames == [0x400, 0x401, 0x500, 0x600, 0x601])
        #expect(try log.harvest().frames == [])

        // The page tables' accessed and dirty bits are set now: only the stored-to page is new.
        // The host writes the same frame too; it is reported once.
        try guest.memory.store(UInt8(1), at: GuestPhysicalAddress(0x30_0FFF))
        try runToHalt(guest)
        #expect(try log.harvest().frames == [0x300])

        try log.disable()
        try log.disable()                                         // idempotent
        try guest.memory.store(UInt8(1), at: GuestPhysicalAddress(0x70_0000))
        #expect(throws: VMMError.self) { _ = try log.harvest() }
        #expect(guest.memory.takeHostWrittenFrames() == [])       // recording stopped with the log
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func framesAboveFourGiBAreNumberedFromTheirAddress() throws {
        let high: UInt64 = 1 << 32
        let guest = try TinyGuest(code: [
            0x48, 0xB8, 0x08, 0x30, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  // mov rax, 0x1_0000_3008
            0x48, 0xBB, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // mov rbx, 0x1122334455667788
            0x48, 0x89, 0x18,                                            // mov [rax], rbx
            0xF4,                                                        // hlt
        ], memorySize: (4 << 30) + (512 << 20))
        let memory = guest.memory
        #expect(memory.regions.map(\.start.rawValue) == [0, high])
        // The boot map covers 4 GiB; a fifth page directory maps the 2 MiB at 4 GiB.
        let pd4 = BootLayout.pageDirectories.rawValue + 4 * 4096
        try memory.store(pd4 | 0x3, at: GuestPhysicalAddress(BootLayout.pdpt.rawValue + 4 * 8))
        try memory.store(high | 0x83, at: GuestPhysicalAddress(pd4))

        let log = DirtyPageLog(vm: guest.vm, memory: memory)
        try log.enable()
        try runToHalt(guest)
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(high + 0x3008)) == 0x1122_3344_5566_7788)
        #expect(try log.harvest().frames == [Self.pml4, Self.pdpt, Self.pd0, pd4 >> 12, 0x10_0003])

        let highEnd = memory.regions[1].end.rawValue
        try memory.write([9], at: GuestPhysicalAddress(high + 0x7123))
        try memory.store(UInt64(9), at: GuestPhysicalAddress(highEnd - 8))
        try memory.store(UInt64(9), at: GuestPhysicalAddress(memory.lowEnd.rawValue - 8))
        #expect(try log.harvest().frames == [(memory.lowEnd.rawValue >> 12) - 1, 0x10_0007, (highEnd >> 12) - 1])
    }
}
