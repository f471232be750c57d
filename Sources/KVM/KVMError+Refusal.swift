import Glibc

extension KVMError {
    /// True when the host does not offer the operation at all (no such ioctl, or an argument it
    /// will never accept) rather than failing it for this call: ENOTTY, EINVAL, ENOSYS, EOPNOTSUPP,
    /// ENXIO (e.g. a local-APIC ioctl on a VM without an in-kernel irqchip).
    public var isRefusalByHost: Bool {
        guard case .ioctl(_, let err) = self else { return false }
        return [ENOTTY, EINVAL, ENOSYS, EOPNOTSUPP, ENXIO].contains(err)
    }

    /// The errno of a failed ioctl, nil for other failures.
    public var errno: Int32? {
        if case .ioctl(_, let err) = self { return err }
        return nil
    }
}
