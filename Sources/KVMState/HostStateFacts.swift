import CKVM
import KVM

/// What this host's KVM offers for state capture, read once from /dev/kvm: the MSRs it can
/// save, whether it has XSAVE (else the legacy FPU ioctls are used) and the XSAVE2 buffer size.
public struct HostStateFacts: Sendable, Equatable {
    /// KVM_GET_MSR_INDEX_LIST (empty, with `msrIndexListRefusal` set, if the host refused it).
    public let msrIndices: [UInt32]
    public let msrIndexListRefusal: String?
    public let hasXSAVE: Bool
    /// KVM_CAP_XSAVE2's buffer size; nil when the host has only KVM_GET_XSAVE.
    public let xsave2Size: Int?

    public init(kvm: KVMSystem) {
        do {
            msrIndices = try kvm.msrIndexList()
            msrIndexListRefusal = nil
        } catch {
            msrIndices = []
            msrIndexListRefusal = error.description
        }
        hasXSAVE = kvm.checkExtension(CKVM_CAP_XSAVE) > 0
        xsave2Size = kvm.xsave2Size()
    }

    public init(msrIndices: [UInt32], hasXSAVE: Bool, xsave2Size: Int?) {
        self.msrIndices = msrIndices
        self.msrIndexListRefusal = nil
        self.hasXSAVE = hasXSAVE
        self.xsave2Size = xsave2Size
    }
}
