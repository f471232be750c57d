import Glibc

/// Who may talk over the control socket: the user the monitor runs as, and root. Checked with
/// `SO_PEERCRED` by the monitor on each connection and by the client on the monitor it reached.
public struct PeerPolicy: Sendable, Equatable {
    public var ownerUID: UInt32
    public var allowsRoot: Bool

    public init(ownerUID: UInt32, allowsRoot: Bool = true) {
        self.ownerUID = ownerUID
        self.allowsRoot = allowsRoot
    }

    /// This process's effective user, and root.
    public static var currentUser: PeerPolicy { PeerPolicy(ownerUID: geteuid()) }

    public func allows(uid: UInt32) -> Bool {
        uid == ownerUID || (allowsRoot && uid == 0)
    }
}

/// The credentials the kernel recorded for the other end of a connected Unix socket.
struct PeerCredentials: Equatable {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32

    static func of(socket fd: Int32) throws(ControlError) -> PeerCredentials {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        var raw: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: raw))
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &raw, &length) == 0 else { throw .system("getsockopt SO_PEERCRED", errno) }
        guard Int(length) == MemoryLayout.size(ofValue: raw) else { throw .protocolViolation("short SO_PEERCRED answer") }
        return PeerCredentials(pid: raw.0, uid: raw.1, gid: raw.2)
    }
}
