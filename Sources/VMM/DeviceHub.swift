import Devices
import KVM

/// The guest's legacy devices on the port bus, wired to IRQ lines and to the machine's state.
final class DeviceHub: Sendable {
    let ports = PortIOBus()
    let mmio = MMIOBus()
    let serial: Serial16550

    static let serialBase: UInt16 = 0x3F8
    static let serialIRQ: UInt32 = 4

    init(vm: VirtualMachine, state: MachineState, console: GuestConsole) throws(BusError) {
        serial = Serial16550(
            output: { console.write($0) },
            setIRQ: { high in try? vm.setIRQLine(DeviceHub.serialIRQ, high: high) })
        try ports.register(serial, base: Self.serialBase, length: 8)
        try ports.register(CMOSClock(), base: 0x70, length: 2)
        try ports.register(ACPIPowerManagement(), base: ACPIPowerManagement.base, length: ACPIPowerManagement.length)
        try ports.register(I8042Controller(onReset: { state.finish(.reset) }), base: 0x60, length: 5)
        try mmio.register(ControlPage(onExit: { state.finish(.exited(status: $0)) }, onUserSpace: { state.markUserSpace() }),
                          base: ControlPage.base, length: ControlPage.length)
    }
}
