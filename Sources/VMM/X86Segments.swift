import CKVM

/// Flat 64-bit segment descriptors in the Linux GDT layout, as KVM wants them in kvm_sregs.
enum X86Segments {
    static let kernelCode: UInt16 = 0x10
    static let kernelData: UInt16 = 0x18
    static let userData: UInt16 = 0x2B
    static let userCode: UInt16 = 0x33

    static func code64(selector: UInt16, dpl: UInt8) -> kvm_segment {
        var s = kvm_segment()
        s.base = 0; s.limit = 0xFFFF_FFFF; s.selector = selector
        s.type = 11; s.present = 1; s.dpl = dpl; s.db = 0; s.s = 1; s.l = 1; s.g = 1
        return s
    }

    static func data(selector: UInt16, dpl: UInt8) -> kvm_segment {
        var s = kvm_segment()
        s.base = 0; s.limit = 0xFFFF_FFFF; s.selector = selector
        s.type = 3; s.present = 1; s.dpl = dpl; s.db = 1; s.s = 1; s.l = 0; s.g = 1
        return s
    }
}
