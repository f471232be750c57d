import CKVM

/// The host's KVM device (/dev/kvm): API checks, capabilities, supported CPUID, VM creation.
// SAFETY: @unchecked Sendable: the only state is an immutable fd; KVM system ioctls are safe from any thread.
public final class KVMSystem: @unchecked Sendable {
    let fd: Int32
    public let path: String

    public init(path: String = "/dev/kvm") throws(KVMError) {
        let fd = ckvm_open_dev(path)
        if fd < 0 { throw .deviceUnavailable(path: path, errno: -fd) }
        self.fd = fd
        self.path = path
        let version = ckvm_ioctl_val(fd, CKVM_GET_API_VERSION, 0)
        if version != 12 {
            _ = ckvm_close(fd)
            throw .unsupportedAPIVersion(version)
        }
    }

    deinit { _ = ckvm_close(fd) }

    /// KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific positive value.
    public func checkExtension(_ capability: Int32) -> Int32 {
        guard capability >= 0 else { return 0 }
        return max(0, ckvm_ioctl_val(fd, CKVM_CHECK_EXTENSION, UInt(capability)))
    }

    public func requireExtension(_ capability: Int32, name: String) throws(KVMError) {
        if checkExtension(capability) == 0 { throw .missingCapability(name) }
    }

    /// The CPUID entries KVM can present to a guest (KVM_GET_SUPPORTED_CPUID).
    public func supportedCPUID() throws(KVMError) -> [CPUIDEntry] {
        var table = ckvm_cpuid()
        table.nent = UInt32(CKVM_MAX_CPUID_ENTRIES)
        // SAFETY: `table` is a ckvm_cpuid with room for CKVM_MAX_CPUID_ENTRIES, the count given in nent; KVM writes at most nent entries.
        _ = try checked("KVM_GET_SUPPORTED_CPUID", ckvm_ioctl_ptr(fd, CKVM_GET_SUPPORTED_CPUID, &table))
        // SAFETY: `entries` holds CKVM_MAX_CPUID_ENTRIES kvm_cpuid_entry2 and KVM lowered nent to the count it filled.
        return withUnsafeBytes(of: &table.entries) { raw in
            let entries = raw.bindMemory(to: kvm_cpuid_entry2.self)
            return (0..<Int(table.nent)).map { CPUIDEntry(entries[$0]) }
        }
    }

    func vcpuMmapSize() throws(KVMError) -> Int {
        Int(try checked("KVM_GET_VCPU_MMAP_SIZE", ckvm_ioctl_val(fd, CKVM_GET_VCPU_MMAP_SIZE, 0)))
    }

    public func createVM() throws(KVMError) -> VirtualMachine {
        let vmfd = try checked("KVM_CREATE_VM", ckvm_ioctl_val(fd, CKVM_CREATE_VM, 0))
        return VirtualMachine(fd: vmfd, runSize: try vcpuMmapSize())
    }
}
