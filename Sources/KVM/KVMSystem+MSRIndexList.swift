import CKVM
import Glibc

extension KVMSystem {
    /// The MSRs KVM can save and restore for a vCPU (KVM_GET_MSR_INDEX_LIST): the host's
    /// msrs_to_save and emulated MSRs. Not every one need read back on a given vCPU.
    public func msrIndexList() throws(KVMError) -> [UInt32] {
        var capacity = 256
        for _ in 0..<6 {
            // struct kvm_msr_list { __u32 nmsrs; __u32 indices[]; }
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4 * (capacity + 1), alignment: 8)
            defer { buffer.deallocate() }
            buffer.storeBytes(of: UInt32(capacity), as: UInt32.self)
            let rc = ckvm_ioctl_ptr(fd, CKVM_GET_MSR_INDEX_LIST, buffer)
            let count = Int(buffer.load(as: UInt32.self))
            if rc == -E2BIG, count > capacity {
                capacity = count
                continue
            }
            _ = try checked("KVM_GET_MSR_INDEX_LIST", rc)
            let n = min(count, capacity)
            return (0..<n).map { buffer.load(fromByteOffset: 4 * ($0 + 1), as: UInt32.self) }
        }
        throw .ioctl(name: "KVM_GET_MSR_INDEX_LIST (list keeps growing)", errno: E2BIG)
    }

    /// KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2): the size of the XSAVE buffer KVM_GET_XSAVE2 fills,
    /// or nil when the host has no XSAVE2 (then KVM_GET_XSAVE's 4096 bytes are the whole state).
    public func xsave2Size() -> Int? {
        let size = Int(checkExtension(CKVM_CAP_XSAVE2))
        return size > 0 ? size : nil
    }
}
