import Glibc

/// The directory that holds the monitors' control sockets must be one only this user controls:
/// a real directory (not a symlink), owned by the effective uid, mode 0700. Otherwise another user
/// could rename our socket and answer `leakvisor inspect` in the monitor's place. Both the monitor
/// (before `bind`) and the client (before `connect`) check it.
public enum SocketDirectory {
    /// What makes a directory entry with this `lstat` mode and owner unfit, or nil if it is fit.
    public static func problem(mode: UInt32, owner: UInt32, expectedOwner: UInt32) -> String? {
        let type = mode & UInt32(S_IFMT)
        if type == UInt32(S_IFLNK) { return "it is a symbolic link" }
        if type != UInt32(S_IFDIR) { return "it is not a directory" }
        if owner != expectedOwner { return "it is owned by uid \(owner), not \(expectedOwner)" }
        let permissions = mode & 0o7777
        if permissions & 0o077 != 0 {
            return "its mode is 0\(String(permissions, radix: 8)) (group or others have access; it must be 0700)"
        }
        if permissions & 0o700 != 0o700 { return "its mode is 0\(String(permissions, radix: 8)) (it must be 0700)" }
        return nil
    }

    /// Checks `path` with `lstat`; when it is absent and `create` is set, makes it with mode 0700
    /// and checks it again (someone may have raced us to the name).
    /// - Returns: false if the directory does not exist and `create` is false.
    @discardableResult
    public static func verify(_ path: String, create: Bool) throws(ControlError) -> Bool {
        var status = stat()
        if lstat(path, &status) != 0 {
            guard errno == ENOENT else { throw .system("lstat \(path)", errno) }
            guard create else { return false }
            if mkdir(path, 0o700) != 0, errno != EEXIST { throw .system("mkdir \(path)", errno) }
            guard lstat(path, &status) == 0 else { throw .system("lstat \(path)", errno) }
        }
        if let why = problem(mode: status.st_mode, owner: status.st_uid, expectedOwner: geteuid()) {
            throw .unsafeDirectory(path: path, why: why)
        }
        return true
    }
}
