import Glibc

/// Thin owner of a TCP socket file descriptor: bind/listen/accept, and reads and writes bounded
/// by a deadline (poll), for the metrics server.
final class TCPSocket: Sendable {
    let fd: Int32

    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    /// A listening socket on `address` (SO_REUSEADDR; IPv6 only for an IPv6 address).
    static func listen(on address: ListenAddress, backlog: Int32 = 64) throws(MetricsError) -> TCPSocket {
        let domain = address.family == .ipv4 ? AF_INET : AF_INET6
        let fd = socket(domain, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno) }
        let socket = TCPSocket(fd: fd)
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if address.family == .ipv6 { _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        let r = Self.withSockaddr(address) { bind(fd, $0, $1) }
        guard r == 0 else { throw .system("cannot listen for metrics at \(address): bind", errno) }
        guard Glibc.listen(fd, backlog) == 0 else { throw .system("listen", errno) }
        return socket
    }

    /// A connected socket to `address` (for tests and clients).
    static func connect(to address: ListenAddress) throws(MetricsError) -> TCPSocket {
        let fd = socket(address.family == .ipv4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno) }
        let socket = TCPSocket(fd: fd)
        let r = Self.withSockaddr(address) { Glibc.connect(fd, $0, $1) }
        guard r == 0 else { throw .system("connect \(address)", errno) }
        return socket
    }

    /// Calls `body` with `address` as a sockaddr and its true length.
    private static func withSockaddr<T>(_ address: ListenAddress, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        switch address.family {
        case .ipv4:
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = address.port.bigEndian
            // SAFETY: `bytes` holds 4 bytes for IPv4 (ListenAddress's invariant); sin_addr is 4 bytes.
            withUnsafeMutableBytes(of: &addr.sin_addr) { $0.copyBytes(from: address.bytes.prefix(4)) }
            // SAFETY: the sockets API takes a sockaddr_in as a sockaddr with its true length.
            return withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .ipv6:
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = address.port.bigEndian
            // SAFETY: `bytes` holds 16 bytes for IPv6; sin6_addr is 16 bytes.
            withUnsafeMutableBytes(of: &addr.sin6_addr) { $0.copyBytes(from: address.bytes.prefix(16)) }
            // SAFETY: as above, a sockaddr_in6 with its true length.
            return withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    /// The port the socket is bound to (the kernel's choice for port 0).
    func boundPort() -> UInt16? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        // SAFETY: getsockname writes at most `length` bytes into the sockaddr_storage.
        let r = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard r == 0 else { return nil }
        // SAFETY: the family says which structure the storage holds; both fit in sockaddr_storage.
        let family = Int32(storage.ss_family)
        return withUnsafeBytes(of: &storage) { raw -> UInt16? in
            switch family {
            case AF_INET: return UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_port)!, as: UInt16.self))
            case AF_INET6: return UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: MemoryLayout<sockaddr_in6>.offset(of: \.sin6_port)!, as: UInt16.self))
            default: return nil
            }
        }
    }

    /// The next connection; nil once the socket is shut down or fails for good.
    func accept() -> TCPSocket? {
        while true {
            let client = Glibc.accept(fd, nil, nil)
            if client >= 0 {
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                return TCPSocket(fd: client)
            }
            // A connection that went away before we took it, or no descriptor free for a moment,
            // is no reason to stop listening.
            if errno == EINTR || errno == ECONNABORTED || errno == EPROTO { continue }
            if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM {
                usleep(10_000)
                continue
            }
            return nil
        }
    }

    /// Waits until the socket is ready for `events`; false when `deadline` (monotonic ns) passed.
    private func wait(for events: Int16, until deadline: UInt64) -> Bool {
        while true {
            let now = Self.monotonicNanoseconds()
            guard now < deadline else { return false }
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&entry, 1, Int32(clamping: (deadline - now + 999_999) / 1_000_000))
            if r > 0 { return true }
            if r < 0 && errno != EINTR { return false }
        }
    }

    /// Reads what is there (at most `limit` bytes) once readable: empty at end of stream, nil at
    /// the deadline or on an error.
    func read(limit: Int, until deadline: UInt64) -> [UInt8]? {
        guard limit > 0, wait(for: Int16(POLLIN), until: deadline) else { return nil }
        var buffer = [UInt8](repeating: 0, count: limit)
        while true {
            // SAFETY: recv writes at most `limit` bytes into the buffer of that size.
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, limit, 0) }
            if n >= 0 { return Array(buffer.prefix(n)) }
            if errno != EINTR { return nil }
        }
    }

    /// Writes all of `bytes` before `deadline`; false if the peer left or was too slow.
    func write(_ bytes: [UInt8], until deadline: UInt64) -> Bool {
        var offset = 0
        while offset < bytes.count {
            guard wait(for: Int16(POLLOUT), until: deadline) else { return false }
            // SAFETY: sends from within the array's bounds (offset < count).
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n > 0 { offset += n } else if n < 0 && errno != EINTR && errno != EAGAIN { return false }
        }
        return true
    }

    /// Sends what fits now without waiting (a best-effort answer).
    func sendNow(_ bytes: [UInt8]) {
        // SAFETY: sends from within the array's bounds.
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
    }

    /// Ends the sending side, then takes what the peer still sends for a moment (at most
    /// `limit` bytes, until `deadline`), so that closing does not reset the connection before the
    /// peer read the answer.
    func finish(drainLimit limit: Int = 65536, until deadline: UInt64) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
        var taken = 0
        while taken < limit, let more = read(limit: min(4096, limit - taken), until: deadline), !more.isEmpty { taken += more.count }
    }

    /// Ends the sending side and takes what already arrived, without waiting, so that closing
    /// is less likely to reset the connection before the peer read a best-effort answer.
    func endWithoutWaiting() {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<4 {
            // SAFETY: recv writes at most the buffer's size.
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { break }
        }
    }

    /// Ends both directions (an accept blocked on this socket returns).
    func shutdownBoth() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
