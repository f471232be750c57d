import Glibc

/// Host directories holding copies of guest binaries (`--symbols DIR`): a guest path such as
/// `/usr/bin/prog` is looked for as `DIR/usr/bin/prog`, then `DIR/prog`, in each directory in
/// order. Guest paths come from the guest: ones with `..` components or NUL bytes find nothing.
public struct SymbolSearchPath: Sendable, Equatable {
    public var directories: [String]

    public init(directories: [String]) {
        self.directories = directories
    }

    /// The host paths tried for `guestPath`, in order (whether or not they exist).
    public func candidates(forGuestPath guestPath: String) -> [String] {
        guard !guestPath.utf8.contains(0) else { return [] }
        let components = guestPath.split(separator: "/").filter { $0 != "." }
        guard let basename = components.last, !components.contains("..") else { return [] }
        let relative = components.joined(separator: "/")
        var paths: [String] = []
        for directory in directories where !directory.isEmpty {
            let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
            for path in [base + "/" + relative, base + "/" + basename] where !paths.contains(path) {
                paths.append(path)
            }
        }
        return paths
    }

    /// The first candidate that is a regular file and, when `buildID` is given, an ELF file with that
    /// build ID (mismatching or unreadable files are skipped); nil if none.
    public func hostFile(forGuestPath guestPath: String, buildID: [UInt8]? = nil) -> String? {
        candidates(forGuestPath: guestPath).first { path in
            var status = stat()
            guard stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return false }
            guard let buildID else { return true }
            return (try? ELFFile(path: path))?.buildID == buildID
        }
    }
}
