import BinaryCoding
import Glibc
import GuestMemory

/// Writes a snapshot file atomically: into a new temporary file beside `path`, synced, then
/// renamed over `path` (and the directory synced), so `path` is either the old file or the
/// complete new one, never a partial file.
public enum SnapshotWriter {
    /// Saves `contents` and the RAM of `memory` (whose layout must be `contents.memoryLayout`).
    /// The guest must be paused. Returns the number of RAM pages written (the rest are holes).
    @discardableResult
    public static func write(_ contents: SnapshotContents, memory: GuestMemory, to path: String) throws(SnapshotFileError) -> Int {
        guard memory.layout == contents.memoryLayout else {
            throw .invalidContents("the memory layout given differs from the guest's RAM")
        }
        let metadata = try SnapshotFileFormat.encodeMetadata(contents)
        // Never write what the reader would refuse: read the metadata back first.
        do throws(SnapshotFileError) {
            _ = try SnapshotFileFormat.decodeMetadata(metadata, path: path)
        } catch {
            throw .invalidContents("\(error)")
        }
        let metadataEnd = UInt64(SnapshotFileFormat.headerSize + metadata.count)
        let page = SnapshotFileFormat.pageSize
        let ramOffset = (metadataEnd + page - 1) / page * page
        let header = SnapshotFileFormat.encodeHeader(.init(
            version: SnapshotFileFormat.version, metadataLength: UInt64(metadata.count),
            metadataCRC: CRC32.checksum(metadata), ramOffset: ramOffset, ramLength: memory.totalSize))

        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)  // guest RAM: anything the guest held
        guard fd >= 0 else { throw .io(path: temporary, operation: "create", errno: errno) }
        var renamed = false
        defer {
            close(fd)
            if !renamed { unlink(temporary) }
        }
        let pages: Int
        do throws(GuestMemoryFileError) {
            pages = try memory.saveSparse(to: fd, at: ramOffset)
        } catch {
            throw .memory(error)
        }
        try writeFully(fd, header + metadata, path: temporary)
        guard fsync(fd) == 0 else { throw .io(path: temporary, operation: "fsync", errno: errno) }
        guard rename(temporary, path) == 0 else { throw .io(path: path, operation: "rename", errno: errno) }
        renamed = true
        syncDirectory(of: path)
        return pages
    }

    private static func writeFully(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SnapshotFileError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .io(path: path, operation: "write", errno: n < 0 ? errno : EIO) }
            done += n
        }
    }

    /// Makes the rename durable. Best effort: a directory that cannot be opened or synced leaves
    /// the file complete, only its name possibly not yet on disk.
    private static func syncDirectory(of path: String) {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let fd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
