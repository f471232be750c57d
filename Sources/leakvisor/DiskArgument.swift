import ArgumentParser
import Foundation
import VMM

/// `--disk PATH[:ro]`: an existing, readable image; read-only when asked or when not writable.
struct DiskArgument {
    let configuration: DiskConfiguration

    init(parsing text: String) throws {
        var path = text
        var readOnly = false
        if text.hasSuffix(":ro") { path = String(text.dropLast(3)); readOnly = true }
        guard !path.isEmpty else { throw ValidationError("--disk needs a path (PATH or PATH:ro)") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("--disk \(path): no such file")
        }
        guard !isDirectory.boolValue else { throw ValidationError("--disk \(path): is a directory, not a disk image") }
        guard access(path, R_OK) == 0 else { throw ValidationError("--disk \(path): not readable (permission denied)") }
        if access(path, W_OK) != 0 { readOnly = true }
        configuration = DiskConfiguration(path: path, readOnly: readOnly)
    }
}
