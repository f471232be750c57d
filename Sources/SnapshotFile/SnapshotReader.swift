import BinaryCoding
import Glibc
import GuestMemory

/// A snapshot read back: its contents and its RAM, mapped privately from the file.
public struct RestoredSnapshot: Sendable {
    public let contents: SnapshotContents
    /// Copy-on-write over the file: the guest's writes never reach it.
    public let memory: GuestMemory
}

/// Reads a snapshot file with every length checked against the file and every section checked.
public enum SnapshotReader {
    /// The contents of `path` without its RAM (for `leakvisor` to say what a file holds).
    public static func contents(of path: String) throws(SnapshotFileError) -> SnapshotContents {
        let fd = try openFile(path)
        defer { close(fd) }
        return try readContents(fd, path: path).contents
    }

    /// Reads `path`, refuses it unless it was made for `expected` (kernel, initramfs and monitor
    /// format version), and maps its RAM.
    public static func read(_ path: String, expecting expected: SnapshotIdentity) throws(SnapshotFileError) -> RestoredSnapshot {
        let fd = try openFile(path)
        defer { close(fd) }
        let (contents, header) = try readContents(fd, path: path)
        if let mismatch = contents.identity.mismatch(against: expected) { throw mismatch }
        do throws(GuestMemoryFileError) {
            let memory = try GuestMemory(privateMappingOf: fd, at: header.ramOffset, layout: contents.memoryLayout)
            return RestoredSnapshot(contents: contents, memory: memory)
        } catch {
            throw .memory(error)
        }
    }

    private static func openFile(_ path: String) throws(SnapshotFileError) -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        return fd
    }

    private static func readContents(_ fd: Int32, path: String) throws(SnapshotFileError) -> (contents: SnapshotContents, header: SnapshotFileFormat.Header) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(path: path, operation: "fstat", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .notASnapshot(path: path) }
        let fileSize = UInt64(max(0, st.st_size))
        let headerSize = UInt64(SnapshotFileFormat.headerSize)
        guard fileSize >= headerSize else {
            // Too short for a header: tell a foreign file from a cut-off snapshot by its magic.
            let start = try readBytes(fd, count: Int(fileSize), at: 0, path: path)
            guard start.starts(with: SnapshotFileFormat.magic.prefix(start.count)), !start.isEmpty else { throw .notASnapshot(path: path) }
            throw .truncated(path: path, needed: headerSize, available: fileSize)
        }
        let header = try SnapshotFileFormat.decodeHeader(try readBytes(fd, count: Int(headerSize), at: 0, path: path), path: path)
        guard header.metadataLength <= SnapshotFileFormat.maxMetadataBytes else {
            throw .corrupt(path: path, reason: "metadata of \(header.metadataLength) bytes")
        }
        let metadataEnd = headerSize + header.metadataLength
        guard header.ramOffset % SnapshotFileFormat.pageSize == 0, header.ramOffset >= metadataEnd,
              header.ramOffset - metadataEnd < SnapshotFileFormat.pageSize else {
            throw .corrupt(path: path, reason: "RAM offset \(header.ramOffset) is unaligned or not right after the metadata")
        }
        let (end, overflow) = header.ramOffset.addingReportingOverflow(header.ramLength)
        guard !overflow else { throw .corrupt(path: path, reason: "RAM length \(header.ramLength) overflows") }
        guard fileSize >= end else { throw .truncated(path: path, needed: end, available: fileSize) }
        guard fileSize == end else { throw .corrupt(path: path, reason: "\(fileSize - end) bytes after the RAM") }
        let metadata = try readBytes(fd, count: Int(header.metadataLength), at: headerSize, path: path)
        guard CRC32.checksum(metadata) == header.metadataCRC else { throw .corrupt(path: path, reason: "metadata checksum mismatch") }
        let padding = try readBytes(fd, count: Int(header.ramOffset - metadataEnd), at: metadataEnd, path: path)
        guard padding.allSatisfy({ $0 == 0 }) else { throw .corrupt(path: path, reason: "the padding before the RAM is not zero") }
        let contents = try SnapshotFileFormat.decodeMetadata(metadata, path: path)
        guard contents.memorySize == header.ramLength else {
            throw .corrupt(path: path, reason: "the memory layout adds up to \(contents.memorySize) bytes, the file holds \(header.ramLength)")
        }
        return (contents, header)
    }

    /// `count` bytes at `offset` (the caller checked they are inside the file).
    private static func readBytes(_ fd: Int32, count: Int, at offset: UInt64, path: String) throws(SnapshotFileError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                if n == 0 { throw .truncated(path: path, needed: offset + UInt64(count), available: offset + UInt64(done)) }
                throw .io(path: path, operation: "read", errno: errno)
            }
            done += n
        }
        return bytes
    }
}
