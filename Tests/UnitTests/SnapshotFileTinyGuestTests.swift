import Devices
import Foundation
import Glibc
import GuestMemory
import KVM
import KVMState
import SnapshotFile
import Testing

@testable import VMM

/// A VM whose RAM slots are a snapshot's private file mapping, with vCPU 0 nobody has set up.
private final class MappedGuest: RunnableGuest {
    let vm: VirtualMachine
    let vcpu: VirtualCPU
    let memory: GuestMemory

    init(kvm: KVMSystem, memory: GuestMemory) throws {
        vm = try kvm.createVM()
        self.memory = memory
        for (slot, ram) in memory.regions.enumerated() {
            try vm.setUserMemoryRegion(slot: UInt32(slot), guestAddress: ram.start.rawValue, size: ram.size, hostAddress: ram.hostAddress)
        }
        vcpu = try vm.createVCPU(id: 0)
    }

    func run() throws -> VCPUExit {
        for _ in 0..<100 {
            let exit = try vcpu.run()
            if case .interrupted = exit { continue }
            return exit
        }
        throw KVMError.ioctl(name: "KVM_RUN (interrupted 100 times)", errno: EINTR)
    }
}

/// The whole path without Linux: a tiny guest stopped mid-count is written to a snapshot file
/// (KVM state, devices, sparse RAM), read back, and continues in a new VM running straight on the
/// file's private mapping, while the file keeps the snapshot's RAM and the original runs on.
@Suite(.serialized) struct SnapshotFileTinyGuestTests {
    @Test(.enabled(if: hasKVM, "needs read/write access to /dev/kvm"))
    func aTinyGuestContinuesFromASnapshotFile() throws {
        let original = try TinyGuest(code: KVMStateRoundTripTests.countingProgram)
        try original.memory.write(KVMStateRoundTripTests.xmmPattern, at: GuestPhysicalAddress(KVMStateRoundTripTests.counter + 0x100))
        var sregs = try original.vcpu.specialRegisters()
        sregs.cr4 |= 0x600
        try original.vcpu.setSpecialRegisters(sregs)
        for expected in 1...7 { #expect(try KVMStateRoundTripTests.nextOut(original) == UInt8(expected)) }

        let host = HostStateFacts(kvm: original.kvm)
        let (captured, _) = try VMState.capture(vm: original.vm, vcpus: [original.vcpu], host: host)
        let uart = Serial16550(output: { _ in }, setIRQ: { _ in })
        uart.receive(Array("typed ahead".utf8))
        let devices = SnapshotDevices(serial: uart.snapshot(), cmos: CMOSClock().snapshot(),
                                      keyboardController: I8042Controller(onReset: {}).snapshot(),
                                      powerManagement: ACPIPowerManagement().snapshot(), virtio: [])
        let identity = SnapshotIdentity(kernel: ImageDigest.sha256(KVMStateRoundTripTests.countingProgram), initramfs: [],
                                        monitorFormatVersion: 1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lv-tiny-\(UUID().uuidString).snapshot").path
        defer { unlink(path) }
        let contents = SnapshotContents(identity: identity, vcpuCount: 1, memoryLayout: original.memory.layout, timeDilation: 1,
                                        kvmState: KVMStateFormat.encode(captured), devices: devices)
        let pages = try SnapshotWriter.write(contents, memory: original.memory, to: path)
        var st = stat()
        #expect(stat(path, &st) == 0)
        print("tiny guest snapshot: \(pages) RAM pages written, \(st.st_size) bytes long, \(Int(st.st_blocks) * 512) on disk")
        #expect(Int(st.st_blocks) * 512 < 1 << 20, "16 MiB of mostly zero RAM stays small on disk")

        let restored = try SnapshotReader.read(path, expecting: identity)
        let copy = try MappedGuest(kvm: original.kvm, memory: restored.memory)
        _ = try KVMStateFormat.decode(restored.contents.kvmState).restore(vm: copy.vm, vcpus: [copy.vcpu], host: host)
        let console = Serial16550(output: { _ in }, setIRQ: { _ in })
        try console.restore(restored.contents.devices.serial)
        #expect(console.read(offset: 0, size: 1) == UInt32(UInt8(ascii: "t")))

        for expected in 8...20 { #expect(try KVMStateRoundTripTests.nextOut(copy) == UInt8(expected)) }
        guard case .halt = try copy.run() else { Issue.record("expected hlt after 20"); return }
        let counter = GuestPhysicalAddress(KVMStateRoundTripTests.counter)
        #expect(try copy.memory.load(UInt64.self, at: counter.adding(8)!) == 210)
        #expect(try copy.memory.read(at: counter.adding(0x20)!, count: 16) == KVMStateRoundTripTests.xmmPattern)

        // The original runs on after the save gave its zero pages back (MADV_REMOVE), to the same end.
        for expected in 8...20 { #expect(try KVMStateRoundTripTests.nextOut(original) == UInt8(expected)) }
        guard case .halt = try original.run() else { Issue.record("expected hlt after 20 in the original"); return }
        #expect(try original.memory.read(at: GuestPhysicalAddress(0), count: 16 << 20) == copy.memory.read(at: GuestPhysicalAddress(0), count: 16 << 20))

        // The guest wrote its private copy; the file still holds the RAM at the snapshot (count 7).
        let again = try SnapshotReader.read(path, expecting: identity)
        #expect(try again.memory.load(UInt64.self, at: counter) == 7)
        #expect(try again.memory.load(UInt64.self, at: counter.adding(8)!) == 28)
    }
}
