import Foundation
import Synchronization

/// A small HTTP/1.1 server for scrapers: GET or HEAD /metrics answers with `body()`, any other
/// path 404, any other method 405. Bounded against hostile clients: one accept thread, one
/// short-lived thread per client, at most `Limits.clients` at once (more get 503), a request head
/// of at most `Limits.requestBytes` (else 431), `Limits.requestSeconds` to send it (else the
/// connection is closed), `Limits.answerSeconds` to take the answer, and one request per connection.
public final class MetricsServer: Sendable {
    /// Bounds on what one client may cost the monitor.
    public struct Limits: Sendable {
        public var requestBytes = 8192
        public var requestSeconds: Double = 5
        public var answerSeconds: Double = 10
        public var clients = 8

        public init() {}
    }

    /// What a scrape of /metrics returns.
    public struct Body: Sendable {
        public var contentType: String
        public var bytes: [UInt8]

        public init(contentType: String, bytes: [UInt8]) {
            self.contentType = contentType
            self.bytes = bytes
        }
    }

    /// The address the server listens on (with the port the kernel chose for port 0).
    public let address: ListenAddress
    private let listener: TCPSocket
    private let connections: Connections

    /// Binds `address` and starts serving; `body` is called once per scrape of /metrics, in the
    /// format the scraper's `Accept` header asks for.
    public init(address: ListenAddress, limits: Limits = Limits(), body: @escaping @Sendable (MetricsFormat) -> Body) throws(MetricsError) {
        listener = try TCPSocket.listen(on: address)
        self.address = address.with(port: listener.boundPort() ?? address.port)
        let connections = Connections(limits: limits, body: body)
        self.connections = connections
        let listener = self.listener
        let thread = Thread {
            while let client = listener.accept() { connections.admit(client) }
        }
        thread.name = "metrics"
        thread.start()
    }

    /// Stops accepting connections (clients being answered finish).
    public func stop() { listener.shutdownBoth() }

    /// The URL scrapers use.
    public var url: String { "http://\(address)/metrics" }
}

/// What the client threads share: the limits, how many are open, and the body source.
private final class Connections: Sendable {
    let limits: MetricsServer.Limits
    let body: @Sendable (MetricsFormat) -> MetricsServer.Body
    let open = Mutex(0)

    init(limits: MetricsServer.Limits, body: @escaping @Sendable (MetricsFormat) -> MetricsServer.Body) {
        self.limits = limits
        self.body = body
    }

    /// Serves `client` on its own thread, or turns it away when `limits.clients` are open.
    func admit(_ client: TCPSocket) {
        let admitted = open.withLock { n in
            guard n < limits.clients else { return false }
            n += 1
            return true
        }
        guard admitted else {
            // Best effort and without waiting: the accept thread never blocks on a client.
            client.sendNow(Self.response(status: "503 Service Unavailable", text: "too many clients\n"))
            client.endWithoutWaiting()
            return
        }
        let thread = Thread { [self] in
            defer { open.withLock { $0 -= 1 } }
            serve(client)
        }
        thread.name = "metrics client"
        thread.start()
    }

    func serve(_ client: TCPSocket) {
        guard let answer = read(client) else { return }
        let deadline = TCPSocket.monotonicNanoseconds() &+ UInt64(limits.answerSeconds * 1e9)
        guard client.write(answer, until: deadline) else { return }
        client.finish(until: min(deadline, TCPSocket.monotonicNanoseconds() &+ 200_000_000))
    }

    /// Reads the request head and makes the answer; nil when the client is dropped without one
    /// (too slow, or it left).
    func read(_ client: TCPSocket) -> [UInt8]? {
        let readDeadline = TCPSocket.monotonicNanoseconds() &+ UInt64(limits.requestSeconds * 1e9)
        var head: [UInt8] = []
        var request: HTTPRequestHead?
        reading: while true {
            switch HTTPRequestHead.parse(head) {
            case .request(let parsed):
                request = parsed
                break reading
            case .malformed:
                break reading
            case .incomplete:
                guard head.count < limits.requestBytes else {
                    return Self.response(status: "431 Request Header Fields Too Large", text: "request too large\n")
                }
                // A client that is too slow or leaves is dropped without an answer.
                guard let more = client.read(limit: limits.requestBytes - head.count, until: readDeadline), !more.isEmpty else { return nil }
                head += more
            }
        }
        guard let request else { return Self.response(status: "400 Bad Request", text: "not an HTTP/1.x request\n") }
        return answer(request)
    }

    func answer(_ request: HTTPRequestHead) -> [UInt8] {
        guard request.method == "GET" || request.method == "HEAD" else {
            return Self.response(status: "405 Method Not Allowed", text: "only GET and HEAD\n", extra: "Allow: GET, HEAD\r\n")
        }
        guard request.path == "/metrics" else {
            return Self.response(status: "404 Not Found", text: "not found; metrics are at /metrics\n", headOnly: request.method == "HEAD")
        }
        let body = self.body(MetricsFormat(accept: request.accept))
        return Self.response(status: "200 OK", contentType: body.contentType, body: body.bytes, headOnly: request.method == "HEAD")
    }

    static func response(status: String, text: String, extra: String = "", headOnly: Bool = false) -> [UInt8] {
        response(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8), extra: extra, headOnly: headOnly)
    }

    static func response(status: String, contentType: String, body: [UInt8], extra: String = "", headOnly: Bool = false) -> [UInt8] {
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n\(extra)Connection: close\r\n\r\n"
        return Array(head.utf8) + (headOnly ? [] : body)
    }
}
