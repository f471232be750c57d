import Boot
import Foundation
import GuestMemory
import KVM

/// The cost of the cheapest exit to the monitor: a throwaway one-vCPU VM whose kernel-mode code
/// is `out 0x80, al` in a loop. Each KVM_RUN returns with the port write; the figure is the wall
/// time per round trip (guest → monitor → guest), what every trap the monitor handles costs at least.
public enum ExitRoundTrip {
    public static func measure(iterations: Int = 2000, policy: any HostPolicy = HostDetection.detect()) throws(VMMError) -> Double {
        let memory: GuestMemory
        do { memory = try GuestMemory(size: 16 << 20) } catch { throw .memory(error) }
        let code: UInt64 = 0x10_0000
        do { try EarlyPageTables.write(into: memory) } catch { throw .exitProbe(.boot(error)) }
        do {
            try memory.write([0xE6, 0x80, 0xEB, 0xFC] as [UInt8], at: GuestPhysicalAddress(code))  // out 0x80, al; jmp back
        } catch {
            throw .exitProbe(.memory(error))
        }
        do throws(KVMError) {
            let kvm = try KVMSystem()
            let vm = try kvm.createVM()
            let ram = memory.regions[0]
            try vm.setUserMemoryRegion(slot: 0, guestAddress: ram.start.rawValue, size: ram.size, hostAddress: ram.hostAddress)
            let vcpu = try vm.createVCPU(id: 0)
            try vcpu.setCPUID(policy.cpuid(supported: kvm.supportedCPUID(), vcpu: 0, of: 1))
            try VCPUSetup.enterKernel(vcpu, entry: code, bootParams: BootLayout.bootParams.rawValue)
            var exits = 0
            let start = DispatchTime.now().uptimeNanoseconds
            while exits < iterations {
                if case .portIO = try vcpu.run() { exits += 1 }
            }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations) / 1000
        } catch {
            throw .kvm(error)
        }
    }
}
