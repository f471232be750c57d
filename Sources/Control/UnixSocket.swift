import Glibc

/// Thin owner of a Unix stream socket file descriptor: bind/listen/accept/connect and whole-line
/// I/O, optionally bounded by a deadline.
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
        guard bytes.count < capacity, !bytes.contains(0) else { throw .pathTooLong(path) }
        // SAFETY: bytes.count < capacity (checked above): the path and its NUL fit in sun_path.
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return addr
    }

    /// Binds with the socket file's mode already 0600 (Linux creates the file with the socket
    /// inode's mode, so `fchmod` before `bind` leaves no window with a wider mode), then listens.
    func bindAndListen(_ path: String, backlog: Int32 = 16) throws(ControlError) {
        var addr = try Self.address(path)
        guard fchmod(fd, 0o600) == 0 else { throw .system("fchmod", errno) }
        unlink(path)
        // SAFETY: the sockets API takes a sockaddr_un as a sockaddr with its true length; the kernel
        // reads no more than that length.
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else { throw .system("bind \(path)", errno) }
        guard listen(fd, backlog) == 0 else { throw .system("listen", errno) }
    }

    func connect(_ path: String) throws(ControlError) {
        var addr = try Self.address(path)
        // SAFETY: as in bindAndListen: a sockaddr_un passed as a sockaddr with its true length.
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
            // A connection that went away before we took it is no reason to stop listening.
            if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE { continue }
            return nil
        }
    }

    /// Waits until the socket is ready for `events` or the deadline passes.
    private func wait(for events: Int16, until deadline: IODeadline?, doing what: String) throws(ControlError) {
        guard let deadline else { return }
        while true {
            let remaining = deadline.remainingMilliseconds
            guard remaining > 0 else { throw .timedOut(what) }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&entry, 1, remaining)
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw .system("poll", errno) }
        }
    }

    /// Reads up to the first newline (not included); fails past `limit` bytes, on early EOF, or
    /// when `deadline` passes before the whole line arrived.
    func readLine(limit: Int, deadline: IODeadline? = nil) throws(ControlError) -> [UInt8] {
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            try wait(for: Int16(POLLIN), until: deadline, doing: "waiting for a complete line")
            // With a deadline, poll said data is there; never block past it in recv.
            let flags = deadline == nil ? Int32(0) : Int32(MSG_DONTWAIT)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, flags) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { continue }
                throw .system("read", errno)
            }
            if n == 0 { throw .protocolViolation("connection closed before a complete line") }
            let end = buffer[0..<n].firstIndex(of: 0x0A) ?? n
            guard line.count + end <= limit else { throw .lineTooLong(limit: limit) }
            line += buffer[0..<end]
            if end < n { return line }
        }
    }

    /// Writes all of `bytes`, or fails when `deadline` passes first (a client that does not read).
    func writeAll(_ bytes: [UInt8], deadline: IODeadline? = nil) throws(ControlError) {
        var offset = 0
        while offset < bytes.count {
            try wait(for: Int16(POLLOUT), until: deadline, doing: "writing an answer nobody reads")
            let flags = Int32(MSG_NOSIGNAL) | (deadline == nil ? 0 : Int32(MSG_DONTWAIT))
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, flags) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { continue }
                throw .system("write", errno)
            }
            offset += n
        }
    }
}

/// A point in monotonic time by which a socket operation must be done.
struct IODeadline: Equatable {
    let nanoseconds: UInt64

    init(secondsFromNow seconds: Double) {
        let now = monotonicNanoseconds()
        nanoseconds = now &+ UInt64(max(0, min(seconds, 1e6)) * 1e9)
    }

    /// Milliseconds left, rounded up, at least 0 and at most Int32.max.
    var remainingMilliseconds: Int32 {
        let now = monotonicNanoseconds()
        guard nanoseconds > now else { return 0 }
        return Int32(min((nanoseconds - now + 999_999) / 1_000_000, UInt64(Int32.max)))
    }
}

private func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
