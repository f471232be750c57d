import CLibvirt

/// A connection to libvirt (`qemu:///system` by default), through libvirt's C API.
// SAFETY: @unchecked Sendable: libvirt connections are thread-safe (libvirt's documentation:
// a virConnectPtr may be used from several threads); the pointer never changes.
public final class LibvirtConnection: @unchecked Sendable {
    public static let defaultURI = "qemu:///system"

    let pointer: virConnectPtr
    public let uri: String

    public init(uri: String = LibvirtConnection.defaultURI) throws(LibvirtError) {
        clibvirt_silence_errors()
        guard let pointer = virConnectOpen(uri) else { throw .connect(uri: uri, message: Self.lastError()) }
        self.pointer = pointer
        self.uri = uri
    }

    deinit { virConnectClose(pointer) }

    /// The domain called `name`.
    public func domain(named name: String) throws(LibvirtError) -> LibvirtDomain {
        guard let domain = virDomainLookupByName(pointer, name) else {
            throw .noDomain(name: name, uri: uri, message: Self.lastError())
        }
        return LibvirtDomain(domain, connection: self, name: name)
    }

    /// Whether this connection talks to the system instance (root's QEMU processes).
    public var isSystem: Bool { uri.hasSuffix(":///system") || uri.contains("/system?") }

    static func lastError() -> String {
        guard let message = virGetLastErrorMessage() else { return "unknown error" }
        return String(cString: message)
    }
}
