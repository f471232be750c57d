import CLibcrypto
import Glibc

/// SHA-256 digests (OpenSSL's libcrypto) that key a snapshot by the kernel and initramfs it booted.
public enum ImageDigest {
    public static func sha256(_ bytes: some Collection<UInt8>) -> [UInt8] {
        let digest = SHA256Digest()
        Array(bytes).withUnsafeBytes { digest.update($0) }
        return digest.finalize()
    }

    /// The digest of the file at `path`, read in 1 MiB pieces.
    public static func sha256(ofFileAt path: String) throws(SnapshotFileError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        let digest = SHA256Digest()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            // SAFETY: read() writes at most buffer.count bytes into the array's own storage.
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw .io(path: path, operation: "read", errno: errno) }
            if n == 0 { return digest.finalize() }
            buffer.withUnsafeBytes { digest.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }
}

/// One SHA-256 computation through libcrypto's EVP interface; `finalize` ends it.
private final class SHA256Digest {
    private let context: OpaquePointer

    init() {
        // An allocation or a built-in digest failing here means libcrypto itself is broken.
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            fatalError("libcrypto: SHA-256 is not available")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    func update(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        guard EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1 else { fatalError("libcrypto: SHA-256 update failed") }
    }

    func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &digest, &length) == 1, length == 32 else { fatalError("libcrypto: SHA-256 final failed") }
        return Array(digest.prefix(32))
    }
}
