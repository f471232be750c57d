import Glibc

/// Thin owner of a Unix stream socket file descriptor: bind/listen/accept/connect and whole-line I/O.
final class UnixSocket: Sendable {
    let fd: Int32

    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    static func make() throws(ControlError) -> UnixSocket {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno) }
        return UnixSocket(fd: fd)
    }

    private static func address(_ path: String) throws(ControlError) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { throw .pathTooLong(path) }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return addr
    }

    func bindAndListen(_ path: String) throws(ControlError) {
        var addr = try Self.address(path)
        unlink(path)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else { throw .system("bind \(path)", errno) }
        chmod(path, 0o600)
        guard listen(fd, 8) == 0 else { throw .system("listen", errno) }
    }

    func connect(_ path: String) throws(ControlError) {
        var addr = try Self.address(path)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else { throw .system("connect \(path)", errno) }
    }

    func accept() -> UnixSocket? {
        while true {
            let client = Glibc.accept(fd, nil, nil)
            if client >= 0 {
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                return UnixSocket(fd: client)
            }
            if errno != EINTR { return nil }
        }
    }

    /// Reads up to the first newline (not included); fails past `limit` bytes or on early EOF.
    func readLine(limit: Int) throws(ControlError) -> [UInt8] {
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system("read", errno)
            }
            if n == 0 { throw .protocolViolation("connection closed before a complete line") }
            if let nl = buffer[0..<n].firstIndex(of: 0x0A) {
                line += buffer[0..<nl]
                return line
            }
            line += buffer[0..<n]
            guard line.count <= limit else { throw .protocolViolation("line longer than \(limit) bytes") }
        }
    }

    func writeAll(_ bytes: [UInt8]) throws(ControlError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system("write", errno)
            }
            offset += n
        }
    }
}
