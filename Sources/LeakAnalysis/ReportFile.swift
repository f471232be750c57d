import Foundation

/// Writes report files atomically: a temporary file in the same directory, flushed, then renamed
/// over the destination, so a reader never sees a half-written report.
public enum ReportFile {
    public static func writeJSON(_ report: LeakReport, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try write(try encoder.encode(report), to: path)
    }

    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: data) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: temporary.path])
        }
        let fd = open(temporary.path, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        guard rename(temporary.path, url.path) == 0 else {
            let error = String(cString: strerror(errno))
            unlink(temporary.path)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path, NSLocalizedDescriptionKey: error])
        }
    }
}
