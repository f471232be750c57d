import Boot
import Foundation
import GuestMemory
import KVM

@testable import VMM

/// A one-vCPU VM with `memorySize` bytes of RAM (16 MiB by default; slot `i` maps region `i`, as
/// `Machine` does), the boot identity map (4 GiB, 2 MiB pages), the boot GDT, and `code` at 1 MiB
/// entered in 64-bit mode at CPL0 exactly as a kernel is entered.
/// No in-kernel irqchip: `hlt` exits to user space.
final class TinyGuest {
    static let codeAddress: UInt64 = 0x10_0000
    let kvm: KVMSystem
    let vm: VirtualMachine
    let memory: GuestMemory
    let vcpu: VirtualCPU

    init(code: [UInt8], memorySize: UInt64 = 16 << 20, logDirtyPages: Bool = false) throws {
        kvm = try KVMSystem()
        vm = try kvm.createVM()
        memory = try GuestMemory(size: memorySize)
        for (slot, ram) in memory.regions.enumerated() {
            try vm.setUserMemoryRegion(slot: UInt32(slot), guestAddress: ram.start.rawValue, size: ram.size,
                                       hostAddress: ram.hostAddress, logDirtyPages: logDirtyPages)
        }
        try EarlyPageTables.write(into: memory)
        try memory.write(code, at: GuestPhysicalAddress(Self.codeAddress))
        vcpu = try vm.createVCPU(id: 0)
        // EFER.LME is only accepted once CPUID says long mode exists.
        try vcpu.setCPUID(HostDetection.detect().cpuid(supported: kvm.supportedCPUID(), vcpu: 0, of: 1))
        try VCPUSetup.enterKernel(vcpu, entry: Self.codeAddress, bootParams: BootLayout.bootParams.rawValue)
    }

    /// Runs to the next exit that is not a spurious EINTR.
    func run() throws -> VCPUExit {
        for _ in 0..<100 {
            let exit = try vcpu.run()
            if case .interrupted = exit { continue }
            return exit
        }
        throw KVMError.ioctl(name: "KVM_RUN (interrupted 100 times)", errno: EINTR)
    }
}

let hasKVM = FileManager.default.fileExists(atPath: "/dev/kvm")
    && FileManager.default.isReadableFile(atPath: "/dev/kvm")
    && FileManager.default.isWritableFile(atPath: "/dev/kvm")
