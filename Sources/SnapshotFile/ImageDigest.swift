import Crypto
import Glibc

/// SHA-256 digests (swift-crypto) that key a snapshot by the kernel and initramfs it booted.
public enum ImageDigest {
    public static func sha256(_ bytes: some Collection<UInt8>) -> [UInt8] {
        Array(SHA256.hash(data: Array(bytes)))
    }

    /// The digest of the file at `path`, read in 1 MiB pieces.
    public static func sha256(ofFileAt path: String) throws(SnapshotFileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            // SAFETY: read() writes at most buffer.count bytes into the array's own storage.
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw .io(path: path, operation: "read", errno: errno) }
            if n == 0 { return Array(hasher.finalize()) }
            hasher.update(data: buffer[0..<n])
        }
    }
}
