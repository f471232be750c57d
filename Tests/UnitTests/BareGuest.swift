import Boot
import Foundation
import GuestMemory
import KVM

@testable import VMM

/// Something whose vCPU 0 can be run to its next exit.
protocol RunnableGuest {
    func run() throws -> VCPUExit
}

extension TinyGuest: RunnableGuest {}

/// A new VM with RAM in slots like `TinyGuest` and vCPUs that nobody has set up, optionally
/// with the in-kernel irqchip and PIT (created before the vCPU, as `Machine` does). `load`
/// makes it a TinyGuest (code at 1 MiB entered in 64-bit mode at CPL0); a restore instead
/// copies RAM in and puts a captured state into it.
final class BareGuest: RunnableGuest {
    let kvm: KVMSystem
    let vm: VirtualMachine
    let memory: GuestMemory
    let vcpus: [VirtualCPU]
    /// vCPU 0, the one `load` sets up and `run` runs.
    var vcpu: VirtualCPU { vcpus[0] }

    init(memorySize: UInt64 = 16 << 20, irqchip: Bool, vcpuCount: Int = 1) throws {
        kvm = try KVMSystem()
        vm = try kvm.createVM()
        if irqchip {
            try? vm.setTSSAddress(0xFFFB_D000)
            try? vm.setIdentityMapAddress(0xFFFB_C000)
            try vm.createIRQChip()
            try vm.createPIT()
        }
        memory = try GuestMemory(size: memorySize)
        for (slot, ram) in memory.regions.enumerated() {
            try vm.setUserMemoryRegion(slot: UInt32(slot), guestAddress: ram.start.rawValue, size: ram.size,
                                       hostAddress: ram.hostAddress)
        }
        let vm = self.vm
        vcpus = try (0..<max(1, vcpuCount)).map { id in try vm.createVCPU(id: id) }
    }

    /// Page tables, GDT, `code` at 1 MiB, CPUID and the 64-bit kernel entry, as `TinyGuest`.
    func load(code: [UInt8]) throws {
        try EarlyPageTables.write(into: memory)
        try memory.write(code, at: GuestPhysicalAddress(TinyGuest.codeAddress))
        try vcpu.setCPUID(HostDetection.detect().cpuid(supported: kvm.supportedCPUID(), vcpu: 0, of: 1))
        try VCPUSetup.enterKernel(vcpu, entry: TinyGuest.codeAddress, bootParams: BootLayout.bootParams.rawValue)
    }

    /// Copies RAM captured region by region (same sizes) into this VM's RAM.
    func copyIn(ram: [[UInt8]]) {
        for (region, bytes) in zip(memory.regions, ram) {
            bytes.withUnsafeBytes { raw in
                if let base = raw.baseAddress {
                    region.hostAddress.copyMemory(from: base, byteCount: min(raw.count, Int(region.size)))
                }
            }
        }
    }

    func run() throws -> VCPUExit {
        for _ in 0..<100 {
            let exit = try vcpu.run()
            if case .interrupted = exit { continue }
            return exit
        }
        throw KVMError.ioctl(name: "KVM_RUN (interrupted 100 times)", errno: EINTR)
    }

    /// Its RAM, region by region.
    func copyOutRAM() -> [[UInt8]] {
        memory.regions.map { Array(UnsafeRawBufferPointer(start: $0.hostAddress, count: Int($0.size))) }
    }
}
