import Glibc

/// A failed operation on /dev/kvm, a VM or a vCPU, with the errno that KVM returned.
public enum KVMError: Error, CustomStringConvertible, Sendable {
    case deviceUnavailable(path: String, errno: Int32)
    case unsupportedAPIVersion(Int32)
    case missingCapability(String)
    case ioctl(name: String, errno: Int32)
    case mmap(what: String, errno: Int32)

    public var description: String {
        switch self {
        case .deviceUnavailable(let path, let err):
            let hint: String
            switch err {
            case ENOENT: hint = "no KVM on this host (is the kvm module loaded?)"
            case EACCES, EPERM: hint = "permission denied (add your user to the 'kvm' group or run as root)"
            default: hint = String(cString: strerror(err))
            }
            return "cannot open \(path): \(hint)"
        case .unsupportedAPIVersion(let v): return "KVM API version \(v) is not supported (need 12)"
        case .missingCapability(let c): return "KVM lacks a required capability: \(c)"
        case .ioctl(let name, let err): return "\(name) failed: \(String(cString: strerror(err))) (errno \(err))"
        case .mmap(let what, let err): return "mmap of \(what) failed: \(String(cString: strerror(err)))"
        }
    }
}

/// Calls an ioctl wrapper that returns -errno on failure, mapping failure to `KVMError.ioctl`.
@inline(__always)
func checked(_ name: String, _ rc: Int32) throws(KVMError) -> Int32 {
    if rc < 0 { throw .ioctl(name: name, errno: -rc) }
    return rc
}
