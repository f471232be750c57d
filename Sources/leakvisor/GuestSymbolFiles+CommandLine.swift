import Introspection

extension GuestSymbolFiles {
    /// Where `run` and `attach` look for host copies of guest files: the --symbols directories,
    /// then `extraRoots`, then the default image's rootfs; host libraries as copies of the guest's.
    static func forCommandLine(directories: [String], extraRoots: [String] = []) -> GuestSymbolFiles {
        var files = GuestSymbolFiles(roots: directories.map { HostPathArgument.absolute($0) } + extraRoots,
                                     hostCopies: ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"])
        if let rootfs = GuestImageLocator.defaultDirectory()?.appendingPathComponent("rootfs").path { files.roots.append(rootfs) }
        return files
    }
}
