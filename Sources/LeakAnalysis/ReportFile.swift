import Foundation

/// Writes report files atomically: a temporary file in the same directory, flushed, then renamed
/// over the destination, so a reader never sees a half-written file.
public enum ReportFile {
    public static func writeJSON(_ report: LeakReport, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try write(try encoder.encode(report), to: path)
    }

    /// Writes `data` to a temporary file beside `path` and renames it over `path`. `durable`
    /// flushes it to the disk first (reports); without it the file survives the death of this
    /// process but not of the host, at a fraction of the cost (an attach record rewritten at
    /// every allocator call).
    public static func write(_ data: Data, to path: String, durable: Bool = true) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp").path
        func failure(_ operation: String) -> CocoaError {
            let error = String(cString: strerror(errno))
            unlink(temporary)
            return CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, NSLocalizedDescriptionKey: "\(operation): \(error)"])
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("open") }
        let written = data.withUnsafeBytes { bytes -> Bool in
            var offset = 0
            while offset < bytes.count {
                let n = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                offset += n
            }
            return true
        }
        guard written, !durable || fsync(fd) == 0 else {
            let error = failure("write")   // errno before close can change it
            close(fd)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw failure("rename") }
    }
}
