/// A virtio-mmio device as the firmware tables describe it: register window and interrupt.
public struct VirtioMMIODeviceDescription: Sendable, Equatable {
    public let base: UInt32
    public let gsi: UInt32
    /// Register window length (virtio-mmio version 2).
    public static let windowSize: UInt32 = 0x200

    public init(base: UInt32, gsi: UInt32) {
        self.base = base
        self.gsi = gsi
    }

    /// `Device(VRnn)` with _HID "LNRO0005" (the Linux virtio_mmio ACPI ID), _UID, _CCA and _CRS.
    func aml(index: Int) -> [UInt8] {
        let hex = Array("0123456789ABCDEF")
        let name = "VR" + String(hex[(index >> 4) & 0xF]) + String(hex[index & 0xF])
        let resources = AML.memory32Fixed(base: base, length: Self.windowSize) + AML.levelInterrupt(gsi: gsi)
        return AML.device(name,
                          AML.name("_HID", AML.string("LNRO0005"))
                          + AML.name("_UID", AML.integer(UInt64(index)))
                          + AML.name("_CCA", AML.integer(1))
                          + AML.name("_CRS", AML.resourceTemplate(resources)))
    }
}
