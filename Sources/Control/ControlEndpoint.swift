import Foundation

/// Where a running monitor listens for `leakvisor inspect`: one Unix socket per monitor process,
/// named `PID.sock`, in `$XDG_RUNTIME_DIR/leakvisor` when that runtime directory is a real
/// directory of this user's that nobody else may write, else in `/tmp/leakvisor-EUID`. Either way
/// the socket directory itself must be this user's with mode 0700 (`SocketDirectory`).
public enum ControlEndpoint {
    public static var directory: String {
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], isPrivateRuntimeDirectory(runtime) {
            return (runtime.hasSuffix("/") ? String(runtime.dropLast()) : runtime) + "/leakvisor"
        }
        return "/tmp/leakvisor-\(geteuid())"
    }

    /// An absolute path to a directory (not a symlink) owned by this user, not writable by others:
    /// under `sudo -E` the caller's runtime directory is not root's to use.
    static func isPrivateRuntimeDirectory(_ path: String) -> Bool {
        var status = stat()
        guard path.hasPrefix("/"), !path.utf8.contains(0), lstat(path, &status) == 0 else { return false }
        return status.st_mode & S_IFMT == S_IFDIR && status.st_uid == geteuid() && status.st_mode & 0o022 == 0
    }

    public static func path(forMonitor pid: Int32) -> String { directory + "/\(pid).sock" }

    /// Monitors whose process is alive and whose socket exists, oldest first. Removes stale
    /// sockets. Fails if the directory is not one only this user controls.
    public static func liveSessions() throws(ControlError) -> [Int32] {
        let directory = self.directory
        guard try SocketDirectory.verify(directory, create: false) else { return [] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var pids: [Int32] = []
        for name in names where name.hasSuffix(".sock") {
            guard let pid = Int32(name.dropLast(5)), pid > 0 else { continue }
            var status = stat()
            guard lstat(directory + "/" + name, &status) == 0, status.st_mode & S_IFMT == S_IFSOCK else { continue }
            if kill(pid, 0) == 0 || errno == EPERM {
                pids.append(pid)
            } else {
                unlink(directory + "/" + name)
            }
        }
        return pids.sorted()
    }
}
