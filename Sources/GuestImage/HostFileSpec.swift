/// A host file to copy into the guest: `HOST[:GUEST]` on the command line.
public struct HostFileSpec: Sendable, Equatable {
    /// Path on the host (absolute, or relative to the current directory).
    public var host: String
    /// Absolute path in the guest.
    public var guest: String

    /// Creates a spec; `guest` defaults to `/` + the host file's name.
    public init(host: String, guest: String? = nil) {
        self.host = host
        self.guest = guest ?? "/" + Self.basename(host)
    }

    /// Parses `HOST[:GUEST]`. The split is at the last colon, so a host path
    /// may itself contain colons when GUEST is given. GUEST must be absolute and
    /// defaults to `/` + basename(HOST).
    public init(parsing spec: String) throws {
        var host = spec
        var guest: String?
        if let colon = spec.lastIndex(of: ":") {
            host = String(spec[..<colon])
            let rest = String(spec[spec.index(after: colon)...])
            guest = rest.isEmpty ? nil : rest
        }
        guard !host.isEmpty else { throw HostFileError.badSpec(spec: spec, reason: "empty host path") }
        if let guest, !guest.hasPrefix("/") {
            throw HostFileError.badSpec(spec: spec, reason: "guest path '\(guest)' is not absolute")
        }
        let name = Self.basename(host)
        guard guest != nil || (!name.isEmpty && name != "." && name != "..") else {
            throw HostFileError.badSpec(spec: spec, reason: "cannot derive a guest path from '\(host)'")
        }
        self.init(host: host, guest: guest)
        guard !CPIOArchive.normalize(self.guest).isEmpty else {
            throw HostFileError.badSpec(spec: spec, reason: "guest path is the root directory")
        }
    }

    static func basename(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? ""
    }
}
