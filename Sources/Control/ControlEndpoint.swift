import Foundation

/// Where a running monitor listens for `leakvisor inspect`: one Unix socket per monitor process,
/// `$XDG_RUNTIME_DIR/leakvisor` (or `/tmp/leakvisor-UID`), directory mode 0700, named `PID.sock`.
public enum ControlEndpoint {
    public static var directory: String {
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !runtime.isEmpty,
           FileManager.default.isWritableFile(atPath: runtime) {
            return runtime + "/leakvisor"
        }
        return "/tmp/leakvisor-\(getuid())"
    }

    public static func path(forMonitor pid: Int32) -> String { directory + "/\(pid).sock" }

    /// Monitors whose process is alive and whose socket exists, oldest first. Removes stale sockets.
    public static func liveSessions() -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var pids: [Int32] = []
        for name in names where name.hasSuffix(".sock") {
            guard let pid = Int32(name.dropLast(5)) else { continue }
            if kill(pid, 0) == 0 || errno == EPERM {
                pids.append(pid)
            } else {
                try? FileManager.default.removeItem(atPath: directory + "/" + name)
            }
        }
        return pids.sorted()
    }
}
