import Glibc

/// Guest-supplied file paths made safe to look up on the host.
public enum GuestPath {
    /// `path` with `.` and empty components removed and `..` applied, or nil if it is not
    /// absolute, holds a NUL byte, or climbs above `/`.
    public static func normalized(_ path: String) -> String? {
        guard path.hasPrefix("/"), !path.utf8.contains(0) else { return nil }
        var components: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch component {
            case ".": continue
            case "..":
                guard components.popLast() != nil else { return nil }
            default: components.append(component)
            }
        }
        return "/" + components.joined(separator: "/")
    }

    /// The host path `hostPath` resolves to (every symlink followed), if that is a regular file
    /// inside `root` (also resolved); nil otherwise.
    public static func regularFile(_ hostPath: String, confinedTo root: String) -> String? {
        guard let resolvedRoot = resolved(root), let file = resolved(hostPath) else { return nil }
        let inside = resolvedRoot == "/" || file.hasPrefix(resolvedRoot + "/")
        guard inside else { return nil }
        var status = stat()
        guard stat(file, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return nil }
        return file
    }

    private static func resolved(_ path: String) -> String? {
        guard !path.utf8.contains(0), let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }
}
