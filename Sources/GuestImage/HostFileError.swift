/// Errors from parsing host file specs and bundling host files into an archive.
public enum HostFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A `HOST[:GUEST]` spec that cannot be used.
    case badSpec(spec: String, reason: String)
    /// The host file (or a library it needs) does not exist.
    case missingFile(path: String)
    /// The host file exists but cannot be read.
    case notReadable(path: String)
    /// The host path is a directory or another non-regular file.
    case notRegularFile(path: String)
    /// Symbolic links that loop or nest too deeply.
    case symlinkLoop(path: String)
    /// `ldd` could not be run or failed.
    case lddFailed(path: String, reason: String)
    /// `ldd` reports a shared library that is not installed on the host.
    case missingLibrary(binary: String, library: String)

    public var description: String {
        switch self {
        case .badSpec(let spec, let reason):
            "invalid file spec '\(spec)': \(reason) (expected HOST[:GUEST], GUEST absolute)"
        case .missingFile(let path): "host file '\(path)' does not exist"
        case .notReadable(let path): "host file '\(path)' is not readable"
        case .notRegularFile(let path): "host path '\(path)' is not a regular file"
        case .symlinkLoop(let path): "too many levels of symbolic links at '\(path)'"
        case .lddFailed(let path, let reason): "ldd failed for '\(path)': \(reason)"
        case .missingLibrary(let binary, let library):
            "'\(binary)' needs shared library '\(library)', which ldd cannot find"
        }
    }
}
