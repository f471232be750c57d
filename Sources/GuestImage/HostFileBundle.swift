import Foundation

/// Copies host files into `archive` at their guest paths, keeping their
/// permission bits (so executables stay executable). A dynamically linked ELF
/// file (one with `PT_INTERP`) also brings its interpreter and every shared
/// library `ldd` lists, at the same absolute paths as on the host; symbolic
/// links on the way (e.g. `/lib64/ld-linux-x86-64.so.2`) are recreated and
/// their targets added as regular files. Libraries loaded with `dlopen` are
/// not detected. `ldd` may run the binary's loader, so only bundle trusted files.
public func addHostFiles(_ specs: [HostFileSpec], to archive: inout CPIOArchive) throws {
    for spec in specs {
        let hostPath = HostPath.absolute(spec.host)
        let file = try HostPath.readRegularFile(hostPath)
        archive.addFile(spec.guest, contents: file.contents, mode: file.permissions)
        guard let interpreter = ELFInterpreter.path(in: file.contents) else { continue }
        for library in try [interpreter] + SharedLibraries.paths(neededBy: hostPath) {
            try HostPath.addPreservingLinks(library, to: &archive)
        }
    }
}

/// Host file system helpers (POSIX `stat`/`lstat`, lexical path arithmetic).
enum HostPath {
    static let maxSymlinkHops = 40

    static func absolute(_ path: String) -> String {
        normalize(path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path)
    }

    /// `/`-prefixed path with `.`, `..` and repeated slashes resolved lexically.
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Reads a regular file (following symbolic links).
    static func readRegularFile(_ path: String) throws -> (contents: [UInt8], permissions: UInt32) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw errno == EACCES ? HostFileError.notReadable(path: path) : .missingFile(path: path)
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw HostFileError.notRegularFile(path: path) }
        guard access(path, R_OK) == 0, let data = FileManager.default.contents(atPath: path) else {
            throw HostFileError.notReadable(path: path)
        }
        return ([UInt8](data), UInt32(info.st_mode) & 0o7777)
    }

    /// Adds `path` at the same guest path; each symbolic link in the chain is
    /// added as a link and its target followed, until a regular file.
    static func addPreservingLinks(_ path: String, to archive: inout CPIOArchive) throws {
        var current = normalize(path)
        for _ in 0..<maxSymlinkHops {
            var info = stat()
            guard lstat(current, &info) == 0 else { throw HostFileError.missingFile(path: current) }
            guard info.st_mode & S_IFMT == S_IFLNK else {
                if !archive.contains(current) {
                    let file = try readRegularFile(current)
                    archive.addFile(current, contents: file.contents, mode: file.permissions)
                }
                return
            }
            let target: String
            do {
                target = try FileManager.default.destinationOfSymbolicLink(atPath: current)
            } catch {
                throw HostFileError.notReadable(path: current)
            }
            if !archive.contains(current) { archive.addSymlink(current, target: target) }
            let directory = current.split(separator: "/").dropLast().joined(separator: "/")
            current = normalize(target.hasPrefix("/") ? target : "/" + directory + "/" + target)
        }
        throw HostFileError.symlinkLoop(path: path)
    }
}
