import Glibc
import Synchronization

/// A TCP connection to a GDB remote-protocol stub (QEMU's gdbstub), all-stop mode. Requests and
/// their replies are serialized by the caller (one thread drives the target); `interrupt()` may
/// be called from any thread while the target runs.
public final class GDBRemoteConnection: Sendable {
    /// The longest packet accepted from the stub (QEMU's own limit is 4 KiB of payload).
    public static let maximumPacket = 1 << 20

    private let socket: Int32
    private let sendLock = Mutex(())
    private let buffer = Mutex<[UInt8]>([])

    /// Connects to `host:port` (a numeric IPv4 address) within `timeout` seconds.
    public init(host: String = "127.0.0.1", port: UInt16, timeout: Double = 10) throws(GDBRemoteError) {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .io(operation: "socket", errno: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(fd)
            throw .connect(host: host, port: port, errno: EINVAL)
        }
        let deadline = ContinuousClock.now + .seconds(timeout)
        while true {
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if result == 0 { break }
            let error = errno
            // The stub may still be starting: retry refused connections until the deadline.
            guard error == ECONNREFUSED || error == EINTR, ContinuousClock.now < deadline else {
                close(fd)
                throw .connect(host: host, port: port, errno: error)
            }
            usleep(50_000)
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        socket = fd
    }

    deinit { close(socket) }

    /// Sends a packet without waiting for its reply (`c`, `vCont`: the reply is a later stop).
    public func send(_ payload: String) throws(GDBRemoteError) {
        try writeAll(GDBPacket.frame(payload))
    }

    /// Sends `payload` and returns the stub's reply; an `Exx` reply is `refused`.
    @discardableResult
    public func request(_ payload: String, timeout: Double = 10) throws(GDBRemoteError) -> String {
        try send(payload)
        guard let reply = try receive(timeout: timeout) else { throw .timedOut(waitingFor: "'\(payload.prefix(24))'", seconds: timeout) }
        if reply.count == 3, reply.first == "E" { throw .refused(request: String(payload.prefix(40)), reply: reply) }
        return reply
    }

    /// Like `request`, but an empty reply (the stub does not support it) is `refused` too.
    @discardableResult
    public func require(_ payload: String, timeout: Double = 10) throws(GDBRemoteError) -> String {
        let reply = try request(payload, timeout: timeout)
        guard !reply.isEmpty else { throw .refused(request: String(payload.prefix(40)), reply: "") }
        return reply
    }

    /// The next packet from the stub, or nil when none came within `timeout` seconds (nil: wait forever).
    public func receive(timeout: Double?) throws(GDBRemoteError) -> String? {
        let deadline = timeout.map { ContinuousClock.now + .seconds($0) }
        while true {
            let scanned = try buffer.withLock { bytes throws(GDBRemoteError) -> String? in
                guard case .packet(let payload, let consumed) = try GDBPacket.scan(bytes[...], limit: Self.maximumPacket) else { return nil }
                bytes.removeFirst(consumed)
                return payload
            }
            if let scanned {
                try writeAll([UInt8(ascii: "+")])
                return scanned
            }
            let wait: Int32
            if let deadline {
                let left = (deadline - ContinuousClock.now) / .seconds(1)
                if left <= 0 { return nil }
                wait = Int32(min(left * 1000, 1000).rounded(.up))
            } else {
                wait = 1000
            }
            var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, wait)
            if ready < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "poll", errno: errno)
            }
            if ready == 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count == 0 { throw .closed }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw .io(operation: "recv", errno: errno)
            }
            let overflowing = buffer.withLock { bytes -> Bool in
                bytes += chunk.prefix(count)
                return bytes.count > 2 * Self.maximumPacket + 16
            }
            if overflowing { throw .malformed("more than \(2 * Self.maximumPacket) bytes without a complete packet") }
        }
    }

    /// Asks a running target to stop (the stub answers with a stop reply).
    public func interrupt() throws(GDBRemoteError) {
        try writeAll([0x03])
    }

    private func writeAll(_ bytes: [UInt8]) throws(GDBRemoteError) {
        try sendLock.withLock { _ throws(GDBRemoteError) in
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw errno == EPIPE || errno == ECONNRESET ? .closed : .io(operation: "send", errno: errno)
                }
                sent += n
            }
        }
    }
}
