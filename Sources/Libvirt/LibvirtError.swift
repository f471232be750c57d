/// Why a libvirt call failed, with libvirt's own message.
public enum LibvirtError: Error, CustomStringConvertible {
    case connect(uri: String, message: String)
    case noDomain(name: String, uri: String, message: String)
    case call(String, message: String)
    /// The QEMU process of a running domain could not be found.
    case noProcess(domain: String, why: String)

    public var description: String {
        switch self {
        case .connect(let uri, let message): return "cannot connect to libvirt at \(uri): \(message) (is libvirtd running?)"
        case .noDomain(let name, let uri, let message): return "no domain '\(name)' at \(uri): \(message)"
        case .call(let what, let message): return "libvirt \(what) failed: \(message)"
        case .noProcess(let domain, let why): return "cannot find the QEMU process of domain '\(domain)': \(why)"
        }
    }
}
