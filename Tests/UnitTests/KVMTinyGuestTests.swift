import Boot
import CKVM
import Foundation
import GuestMemory
import KVM
import Testing

@testable import VMM

@Suite(.serialized) struct KVMTinyGuestTests {
    @Test func missingDeviceIsReportedWithENOENT() {
        let error = #expect(throws: KVMError.self) { _ = try KVMSystem(path: "/nonexistent") }
        guard case .deviceUnavailable(let path, let err)? = error else {
            Issue.record("expected .deviceUnavailable, got \(String(describing: error))")
            return
        }
        #expect(path == "/nonexistent")
        #expect(err == ENOENT)
        #expect(error?.description.contains("no KVM on this host") == true)
    }

    @Test func nonKVMDeviceFailsTheAPIVersionCheck() {
        // /dev/null opens fine but does not answer KVM_GET_API_VERSION.
        let error = #expect(throws: KVMError.self) { _ = try KVMSystem(path: "/dev/null") }
        guard case .unsupportedAPIVersion(let v)? = error else {
            Issue.record("expected .unsupportedAPIVersion, got \(String(describing: error))")
            return
        }
        #expect(v == -ENOTTY)
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func systemBasics() throws {
        let kvm = try KVMSystem()
        #expect(kvm.path == "/dev/kvm")
        #expect(kvm.checkExtension(CKVM_CAP_USER_MEMORY) > 0)
        #expect(kvm.checkExtension(0x7FFF_0000) == 0)   // no such capability
        #expect(throws: KVMError.self) { try kvm.requireExtension(0x7FFF_0000, name: "bogus") }
        let cpuid = try kvm.supportedCPUID()
        #expect(cpuid.contains { $0.function == 0 })
        #expect(cpuid.contains { $0.function == 1 })
        // Long mode (CPUID 0x80000001:EDX.LM) is what the boot path relies on.
        #expect(cpuid.first { $0.function == 0x8000_0001 }.map { $0.edx & (1 << 29) != 0 } == true)
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func portOutThenPortInThenHalt() throws {
        let guest = try TinyGuest(code: [
            0xB0, 0x42,                 // mov al, 0x42
            0xE6, 0x80,                 // out 0x80, al
            0x66, 0xBA, 0xF8, 0x03,     // mov dx, 0x3f8
            0xEC,                       // in al, dx
            0xF4,                       // hlt
        ])

        guard case .portIO(let out) = try guest.run() else { Issue.record("expected port output"); return }
        #expect(out.isWrite)
        #expect(out.port == 0x80)
        #expect(out.size == 1)
        #expect(out.count == 1)
        #expect(out.data == [0x42])

        guard case .portIO(let inp) = try guest.run() else { Issue.record("expected port input"); return }
        #expect(!inp.isWrite)
        #expect(inp.port == 0x3F8)
        #expect(inp.size == 1)
        #expect(inp.data.isEmpty)
        guest.vcpu.completeIn([0x99])

        let last = try guest.run()
        guard case .halt = last else { Issue.record("expected hlt, got \(last)"); return }
        let regs = try guest.vcpu.registers()
        #expect(regs.rax & 0xFF == 0x99)
        #expect(regs.rdx & 0xFFFF == 0x3F8)
        #expect(regs.rip == TinyGuest.codeAddress + 10)   // past the hlt
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func wordAndDwordPortOutput() throws {
        let guest = try TinyGuest(code: [
            0x66, 0xB8, 0x34, 0x12,     // mov ax, 0x1234
            0x66, 0xBA, 0x00, 0x05,     // mov dx, 0x500
            0x66, 0xEF,                 // out dx, ax
            0xB8, 0x78, 0x56, 0x34, 0x12, // mov eax, 0x12345678
            0xEF,                       // out dx, eax
            0xF4,                       // hlt
        ])
        guard case .portIO(let word) = try guest.run() else { Issue.record("expected port output"); return }
        #expect(word.port == 0x500 && word.size == 2 && word.data == [0x34, 0x12])
        guard case .portIO(let dword) = try guest.run() else { Issue.record("expected port output"); return }
        #expect(dword.port == 0x500 && dword.size == 4 && dword.data == [0x78, 0x56, 0x34, 0x12])
        let last = try guest.run()
        guard case .halt = last else { Issue.record("expected hlt, got \(last)"); return }
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func stringPortOutput() throws {
        let guest = try TinyGuest(code: [
            0xBE, 0x00, 0x00, 0x20, 0x00,   // mov esi, 0x200000
            0xB9, 0x05, 0x00, 0x00, 0x00,   // mov ecx, 5
            0x66, 0xBA, 0xF8, 0x03,         // mov dx, 0x3f8
            0xF3, 0x6E,                     // rep outsb
            0xF4,                           // hlt
        ])
        try guest.memory.write("hello".utf8, at: GuestPhysicalAddress(0x20_0000))
        // KVM may split the string into several exits; every byte must arrive once, in order.
        var received: [UInt8] = []
        var exits = 0
        while true {
            let exit = try guest.run()
            if case .halt = exit { break }
            guard case .portIO(let io) = exit, exits < 10 else { Issue.record("unexpected exit \(exit)"); return }
            #expect(io.isWrite && io.port == 0x3F8 && io.size == 1)
            #expect(io.data.count == io.count)
            received += io.data
            exits += 1
        }
        #expect(received == Array("hello".utf8))
        let regs = try guest.vcpu.registers()
        #expect(regs.rcx == 0)
        #expect(regs.rsi == 0x20_0005)
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func mmioWriteAndReadOutsideRAM() throws {
        let guest = try TinyGuest(code: [
            0x48, 0xB8, 0x00, 0x00, 0x00, 0xD0, 0x00, 0x00, 0x00, 0x00,  // mov rax, 0xD0000000
            0xC7, 0x00, 0x07, 0x00, 0x00, 0x00,                          // mov dword [rax], 7
            0x8B, 0x58, 0x08,                                            // mov ebx, [rax+8]
            0xF4,                                                        // hlt
        ])
        guard case .mmio(let write) = try guest.run() else { Issue.record("expected an MMIO write"); return }
        #expect(write.isWrite)
        #expect(write.address == 0xD000_0000)
        #expect(write.length == 4)
        #expect(write.data == [7, 0, 0, 0])

        guard case .mmio(let read) = try guest.run() else { Issue.record("expected an MMIO read"); return }
        #expect(!read.isWrite)
        #expect(read.address == 0xD000_0008)
        #expect(read.length == 4)
        #expect(read.data.isEmpty)
        guest.vcpu.completeMMIORead([0xEF, 0xBE, 0xAD, 0xDE])

        let last = try guest.run()
        guard case .halt = last else { Issue.record("expected hlt, got \(last)"); return }
        #expect(try guest.vcpu.registers().rbx == 0xDEAD_BEEF)
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func dirtyLogRecordsTheGuestsWrites() throws {
        let guest = try TinyGuest(code: [
            0x48, 0xA3, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00,  // mov [0x200000], rax
            0x48, 0xA3, 0x08, 0x50, 0x34, 0x00, 0x00, 0x00, 0x00, 0x00,  // mov [0x345008], rax
            0xF4,
        ], logDirtyPages: true)
        _ = try guest.vm.dirtyLog(slot: 0, pageCount: 4096)  // start from a clean log
        let last = try guest.run()
        guard case .halt = last else { Issue.record("expected hlt, got \(last)"); return }
        let bitmap = try guest.vm.dirtyLog(slot: 0, pageCount: 4096)
        func dirty(_ page: Int) -> Bool { bitmap[page / 64] & (1 << UInt64(page % 64)) != 0 }
        #expect(dirty(0x200))
        #expect(dirty(0x345))
        #expect(!dirty(0x300))
        #expect(!dirty(0x100))            // the code page is only read
        // Reading the log cleared it.
        let again = try guest.vm.dirtyLog(slot: 0, pageCount: 4096)
        #expect(!(again[0x200 / 64] & (1 << UInt64(0x200 % 64)) != 0))
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func ramWritesAreVisibleToTheHost() throws {
        let guest = try TinyGuest(code: [
            0x48, 0xB8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // mov rax, 0x1122334455667788
            0x48, 0xA3, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00,  // mov [0x200000], rax
            0xF4,
        ])
        let last = try guest.run()
        guard case .halt = last else { Issue.record("expected hlt, got \(last)"); return }
        #expect(try guest.memory.load(UInt64.self, at: GuestPhysicalAddress(0x20_0000)) == 0x1122_3344_5566_7788)
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func registersAreInTheBootState() throws {
        let guest = try TinyGuest(code: [0xF4])
        let sregs = try guest.vcpu.specialRegisters()
        #expect(sregs.cs.selector == EarlyPageTables.codeSelector)
        #expect(sregs.cs.l == 1 && sregs.cs.dpl == 0)
        #expect(sregs.ss.selector == EarlyPageTables.dataSelector)
        #expect(sregs.cr3 == BootLayout.pml4.rawValue)
        #expect(sregs.efer & 0x500 == 0x500)
        #expect(sregs.cr0 & 0x8000_0001 == 0x8000_0001)
        let regs = try guest.vcpu.registers()
        #expect(regs.rip == TinyGuest.codeAddress)
        #expect(regs.rsi == BootLayout.bootParams.rawValue)
        #expect(regs.rsp == BootLayout.bootStack.rawValue)
        let last = try guest.run()
        guard case .halt = last else { Issue.record("expected hlt, got \(last)"); return }
    }

    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func int3AtCPL0() throws {
        let guest = try TinyGuest(code: [0xCC, 0xF4])
        let exit = try guest.run()
        let onPVM = FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm")
        switch exit {
        case .internalError(_, _, let bytes):
            // kvm_pvm: CPL0 runs in KVM's emulator, which cannot deliver #BP and reports the bytes.
            #expect(bytes.first == 0xCC, "instruction bytes \(bytes)")
            #expect(try guest.vcpu.registers().rip == TinyGuest.codeAddress)
        case .shutdown:
            // VMX/SVM: #BP with an empty IDT escalates to a triple fault.
            #expect(!onPVM, "kvm_pvm reports int3 at CPL0 as an emulation failure")
        case .debug(let event):
            #expect(!onPVM, "kvm_pvm reports int3 at CPL0 as an emulation failure")
            #expect(event.exception == 3)
        default:
            Issue.record("unexpected exit for int3 at CPL0: \(exit)")
        }
    }
}
