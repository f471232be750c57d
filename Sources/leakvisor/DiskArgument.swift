import ArgumentParser
import Foundation
import VMM

/// `--disk PATH[:ro]` (or `--root`): an existing, readable image; read-only when asked or when not writable.
struct DiskArgument {
    let configuration: DiskConfiguration

    init(parsing text: String, option: String = "--disk") throws {
        var path = text
        var readOnly = false
        if text.hasSuffix(":ro") { path = String(text.dropLast(3)); readOnly = true }
        guard !path.isEmpty else { throw ValidationError("\(option) needs a path (PATH or PATH:ro)") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("\(option) \(path): no such file")
        }
        guard !isDirectory.boolValue else { throw ValidationError("\(option) \(path): is a directory, not a disk image") }
        guard access(path, R_OK) == 0 else { throw ValidationError("\(option) \(path): not readable (permission denied)") }
        if access(path, W_OK) != 0 { readOnly = true }
        configuration = DiskConfiguration(path: path, readOnly: readOnly)
    }
}
