import Glibc

/// The whole contents of the regular file at `path`, refusing files larger than `limit` bytes.
func readHostFile(path: String, limit: UInt64) throws(DebugInfoError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)  // a FIFO must not block us
    guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
    defer { close(fd) }
    var status = stat()
    guard fstat(fd, &status) == 0 else { throw .cannotOpen(path: path, errno: errno) }
    guard status.st_mode & S_IFMT == S_IFREG else { throw .notRegularFile(path: path) }
    let size = UInt64(max(status.st_size, 0))
    guard size <= limit else { throw .fileTooLarge(path: path, size: size, limit: limit) }
    var bytes = [UInt8](repeating: 0, count: Int(size))
    var filled = 0
    while filled < bytes.count {
        // SAFETY: the loop runs only while filled < bytes.count, so the buffer is not empty (its
        // base address exists) and read() writes at most the bytes.count - filled left after `filled`.
        let count = bytes.withUnsafeMutableBytes { buffer in
            // SAFETY: the loop runs only while filled < count, so the buffer is non-empty and read() writes inside it.
            read(fd, buffer.baseAddress! + filled, buffer.count - filled)
        }
        if count < 0, errno == EINTR { continue }
        guard count >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        if count == 0 { break }  // shrank while reading
        filled += count
    }
    return Array(bytes.prefix(filled))
}
