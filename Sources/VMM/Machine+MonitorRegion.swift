import GuestMemory
import KVM

/// The monitor region's memory slot: registered with the machine, deleted by the region's `revoke`.
extension Machine {
    /// The KVM memory slot of the monitor region (RAM uses the slots from 0 up, one per region).
    static let monitorRegionSlot: UInt32 = 64

    static func register(_ region: MonitorRegion, vm: VirtualMachine, ramEnd: GuestPhysicalAddress?) throws(VMMError) {
        guard region.start >= (ramEnd ?? region.start), region.start.rawValue >= 1 << 32 else {
            throw .configuration("the monitor region at \(region.start) overlaps guest RAM or the device window below 4 GiB")
        }
        do {
            try vm.setUserMemoryRegion(slot: monitorRegionSlot, guestAddress: region.start.rawValue, size: region.size,
                                       hostAddress: region.hostAddress)
        } catch { throw .kvm(error) }
        let start = region.start.rawValue, host = region.hostAddress
        // SAFETY: the region (and its mapping) outlives the slot: deleting a slot only needs the addresses.
        nonisolated(unsafe) let hostPointer = host
        region.setRevoker { try? vm.setUserMemoryRegion(slot: monitorRegionSlot, guestAddress: start, size: 0, hostAddress: hostPointer) }
    }
}
