import Boot
import Devices
import GuestMemory
import KVM
import SnapshotFile

/// The guest's devices on the port and MMIO buses, wired to IRQ lines and to the machine's state:
/// legacy PC devices, the control page and the virtio-mmio slots (a block device per disk, placeholders after).
final class DeviceHub: Sendable {
    let ports = PortIOBus()
    let mmio = MMIOBus()
    let serial: Serial16550
    let cmos = CMOSClock()
    let powerManagement = ACPIPowerManagement()
    let keyboardController: I8042Controller
    let control: ControlPage
    let transports: [VirtioMMIOTransport]
    /// Where the guest fetches its work (the control page's payload registers).
    var payload: PayloadChannel { control.payload }

    static let serialBase: UInt16 = 0x3F8
    static let serialIRQ: UInt32 = 4
    /// First virtio-mmio window, next to the control page; further devices follow every 0x1000.
    static let virtioBase: UInt64 = 0xD000_1000
    static let virtioStride: UInt64 = 0x1000
    /// The level-triggered ISA IRQ (= GSI) shared by the virtio devices.
    static let virtioIRQ: UInt32 = 5

    /// Virtio-mmio slots a machine always has: the disks first, empty placeholders after, so
    /// that one snapshot of a booted guest fits runs with up to this many disks.
    static let virtioSlots = 4

    /// How many slots a machine with `diskCount` disks has.
    static func slotCount(diskCount: Int) -> Int { max(virtioSlots, diskCount) }

    /// Where the virtio slots for `diskCount` disks live, as the ACPI tables describe them.
    static func virtioDescriptions(diskCount: Int) -> [VirtioMMIODeviceDescription] {
        (0..<slotCount(diskCount: diskCount)).map {
            VirtioMMIODeviceDescription(base: UInt32(virtioBase + virtioStride * UInt64($0)), gsi: virtioIRQ)
        }
    }

    init(vm: VirtualMachine, state: MachineState, console: GuestConsole,
         disks: [VirtioBlock] = [], memory: GuestMemory, payload: PayloadChannel) throws(BusError) {
        serial = Serial16550(
            output: { console.write($0) },
            setIRQ: { high in try? vm.setIRQLine(DeviceHub.serialIRQ, high: high) })
        try ports.register(serial, base: Self.serialBase, length: 8)
        keyboardController = I8042Controller(onReset: { state.finish(.reset) })
        control = ControlPage(onExit: { state.finish(.exited(status: $0)) }, onUserSpace: { state.markUserSpace() }, payload: payload)
        try ports.register(cmos, base: 0x70, length: 2)
        try ports.register(powerManagement, base: ACPIPowerManagement.base, length: ACPIPowerManagement.length)
        try ports.register(keyboardController, base: 0x60, length: 5)
        try mmio.register(control, base: ControlPage.base, length: ControlPage.length)
        let line = SharedIRQLine { high in try? vm.setIRQLine(DeviceHub.virtioIRQ, high: high) }
        let guestMemory = GuestMemoryVirtioAdapter(memory: memory)
        var transports: [VirtioMMIOTransport] = []
        for (index, place) in Self.virtioDescriptions(diskCount: disks.count).enumerated() {
            let device: any VirtioDeviceBackend = index < disks.count ? disks[index] : VirtioPlaceholder()
            let transport = VirtioMMIOTransport(device: device, memory: guestMemory, setIRQ: line.source(index))
            try mmio.register(transport, base: UInt64(place.base),
                              length: VirtioMMIOTransport.windowSize)
            transports.append(transport)
        }
        self.transports = transports
    }

    /// Every device's state, for a snapshot (the vCPUs must be paused).
    func snapshot() -> SnapshotDevices {
        SnapshotDevices(serial: serial.snapshot(), cmos: cmos.snapshot(), keyboardController: keyboardController.snapshot(),
                        powerManagement: powerManagement.snapshot(), virtio: transports.map { $0.snapshot() })
    }

    /// Puts a snapshot's device states back (before any vCPU runs). The virtio slots must match.
    func restore(_ saved: SnapshotDevices) throws(VMMError) {
        guard saved.virtio.count == transports.count else {
            throw .snapshot("the snapshot has \(saved.virtio.count) virtio slots; this machine has \(transports.count) (--disk)")
        }
        do throws(DeviceStateError) {
            try serial.restore(saved.serial)
            try cmos.restore(saved.cmos)
            try keyboardController.restore(saved.keyboardController)
            powerManagement.restore(saved.powerManagement)
            for (transport, state) in zip(transports, saved.virtio) { try transport.restore(state) }
        } catch {
            throw .snapshot("device state: \(error)")
        }
    }
}
