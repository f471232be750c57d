import Foundation
@testable import MetricsExport
import Synchronization
import Testing

/// The metrics server with real TCP clients on loopback: scrapes, errors, and hostile clients
/// (oversized, slow, too many).
@Suite struct MetricsServerTests {
    static let body = MetricsServer.Body(contentType: MetricsFormat.prometheus.contentType, bytes: Array("leakvisor_up 1\n".utf8))

    /// How many times the server made its body.
    final class ScrapeCount: Sendable {
        let value = Mutex(0)
        var count: Int { value.withLock { $0 } }
    }

    static func server(_ limits: MetricsServer.Limits = MetricsServer.Limits(), scrapes: ScrapeCount? = nil) throws -> MetricsServer {
        try MetricsServer(address: ListenAddress(parsing: "127.0.0.1:0"), limits: limits) { _ in
            scrapes?.value.withLock { $0 += 1 }
            return body
        }
    }

    /// Sends `request` and reads the whole answer until the server closes (nil: no answer in time).
    static func exchange(_ server: MetricsServer, _ request: [UInt8], seconds: Double = 10) throws -> String {
        let client = try TCPSocket.connect(to: server.address)
        let deadline = TCPSocket.monotonicNanoseconds() + UInt64(seconds * 1e9)
        _ = client.write(request, until: deadline)
        return read(client, until: deadline)
    }

    static func read(_ client: TCPSocket, until deadline: UInt64) -> String {
        var answer: [UInt8] = []
        while let more = client.read(limit: 65536, until: deadline), !more.isEmpty { answer += more }
        return String(decoding: answer, as: UTF8.self)
    }

    @Test func aScrapeGetsTheBodyAndOtherPathsAndMethodsDoNot() throws {
        let server = try Self.server()
        defer { server.stop() }
        #expect(server.address.port != 0, "port 0 became the kernel's choice")
        #expect(server.url == "http://127.0.0.1:\(server.address.port)/metrics")
        let scrape = try Self.exchange(server, Array("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n".utf8))
        #expect(scrape.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(scrape.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
        #expect(scrape.contains("Content-Length: 15\r\n"))
        #expect(scrape.hasSuffix("\r\n\r\nleakvisor_up 1\n"))
        let query = try Self.exchange(server, Array("GET /metrics?x=1 HTTP/1.0\n\n".utf8))
        #expect(query.hasPrefix("HTTP/1.1 200 OK\r\n") && query.hasSuffix("leakvisor_up 1\n"))
        let head = try Self.exchange(server, Array("HEAD /metrics HTTP/1.1\r\n\r\n".utf8))
        #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n") && head.contains("Content-Length: 15\r\n") && head.hasSuffix("\r\n\r\n"))
        #expect(try Self.exchange(server, Array("GET / HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(try Self.exchange(server, Array("GET /metricsx HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        let post = try Self.exchange(server, Array("POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi".utf8))
        #expect(post.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n") && post.contains("Allow: GET, HEAD\r\n"))
        #expect(try Self.exchange(server, Array("\u{1}\u{2}garbage\r\n\r\n".utf8)).hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
    }

    @Test func anOversizedRequestIsRefused() throws {
        let scrapes = ScrapeCount()
        let server = try Self.server(scrapes: scrapes)
        defer { server.stop() }
        let huge = Array("GET /metrics HTTP/1.1\r\nX-Padding: ".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 10_000)
        let answer = try Self.exchange(server, huge)
        #expect(answer.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "\(answer.prefix(200))")
        #expect(scrapes.count == 0)
    }

    @Test func aSlowClientIsCutAtTheDeadline() throws {
        var limits = MetricsServer.Limits()
        limits.requestSeconds = 0.5
        let server = try Self.server(limits)
        defer { server.stop() }
        let client = try TCPSocket.connect(to: server.address)
        let started = Date()
        _ = client.write(Array("GET /metrics HTTP/1.1\r\n".utf8), until: TCPSocket.monotonicNanoseconds() + 1_000_000_000)
        let answer = Self.read(client, until: TCPSocket.monotonicNanoseconds() + 10_000_000_000)
        let waited = Date().timeIntervalSince(started)
        #expect(answer.isEmpty, "dropped without an answer: \(answer)")
        #expect(waited >= 0.4 && waited < 5, "cut at the 0.5 s deadline, after \(waited) s")
    }

    @Test func clientsBeyondTheLimitAreTurnedAwayAndConcurrentScrapesAllSucceed() throws {
        var limits = MetricsServer.Limits()
        limits.clients = 2
        limits.requestSeconds = 1
        let scrapes = ScrapeCount()
        let server = try Self.server(limits, scrapes: scrapes)
        defer { server.stop() }
        // Two idle clients hold both places; a third is turned away at once.
        let idle = try (0..<2).map { _ in try TCPSocket.connect(to: server.address) }
        usleep(100_000)
        let third = try Self.exchange(server, Array("GET /metrics HTTP/1.1\r\n\r\n".utf8), seconds: 3)
        #expect(third.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(third.prefix(100))")
        // Once the idle ones are cut at their deadline, scrapes are served again, many at once.
        for client in idle { #expect(Self.read(client, until: TCPSocket.monotonicNanoseconds() + 5_000_000_000).isEmpty) }
        usleep(100_000)
        let answers = Mutex([String]())
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            var answer = ""
            // Two places for sixteen clients: those turned away try again.
            for _ in 0..<400 {
                answer = (try? Self.exchange(server, Array("GET /metrics HTTP/1.1\r\n\r\n".utf8))) ?? ""
                if answer.hasPrefix("HTTP/1.1 200") { break }
                usleep(5_000)
            }
            answers.withLock { $0.append(answer) }
        }
        let all = answers.withLock { $0 }
        #expect(all.count == 16 && all.allSatisfy { $0.hasSuffix("leakvisor_up 1\n") }, "\(all.map { $0.prefix(40) })")
        #expect(scrapes.count == 16)
    }

    @Test func anAddressInUseIsATypedError() throws {
        let server = try Self.server()
        defer { server.stop() }
        #expect(throws: MetricsError.self) { try MetricsServer(address: server.address) { _ in Self.body } }
        do {
            _ = try MetricsServer(address: server.address) { _ in Self.body }
        } catch {
            #expect(error.description.contains("cannot listen for metrics at \(server.address)"), "\(error)")
        }
    }

    @Test func afterStopNoConnectionIsServed() throws {
        let server = try Self.server()
        let address = server.address
        server.stop()
        usleep(50_000)
        let answer = (try? TCPSocket.connect(to: address)).map { Self.read($0, until: TCPSocket.monotonicNanoseconds() + 2_000_000_000) }
        #expect(answer == nil || answer == "")
    }

    @Test func listenAddressesParseAndRefuseWhatIsNotAnAddress() throws {
        let v4 = try ListenAddress(parsing: "127.0.0.1:9464")
        #expect(v4.family == .ipv4 && v4.bytes == [127, 0, 0, 1] && v4.port == 9464 && v4.isLoopback && v4.description == "127.0.0.1:9464")
        #expect(try ListenAddress(parsing: "localhost:0") == ListenAddress(parsing: "127.0.0.1:0"))
        #expect(try ListenAddress(parsing: ":80").description == "127.0.0.1:80")
        #expect(try ListenAddress(parsing: "127.8.9.10:1").isLoopback)
        let v6 = try ListenAddress(parsing: "[::1]:9464")
        #expect(v6.family == .ipv6 && v6.isLoopback && v6.description == "[::1]:9464")
        #expect(try !ListenAddress(parsing: "0.0.0.0:9464").isLoopback)
        #expect(try !ListenAddress(parsing: "[::]:9464").isLoopback)
        #expect(try !ListenAddress(parsing: "192.0.2.1:65535").isLoopback)
        for bad in ["9464", "example.com:9464", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:", "::1:9464", "[::1:9464", "127.0.0.1:９",
                    "[127.0.0.1]:80", "256.0.0.1:80", "127.0.0.1:0x10"] {
            #expect(throws: MetricsError.self, "\(bad)") { try ListenAddress(parsing: bad) }
        }
    }

    @Test func requestHeadsParseFromUntrustedBytes() {
        #expect(HTTPRequestHead.parse(Array("GET /metrics HTTP/1.1\r\n".utf8)) == .incomplete)
        #expect(HTTPRequestHead.parse(Array("GET /metrics HTTP/1.1\r\nA: b\r\n\r\n".utf8)) == .request(HTTPRequestHead(method: "GET", path: "/metrics")))
        #expect(HTTPRequestHead.parse(Array("GET /a?b?c HTTP/1.0\n\n".utf8)) == .request(HTTPRequestHead(method: "GET", path: "/a")))
        #expect(HTTPRequestHead.parse(Array("GET /metrics HTTP/1.1\r\nHost: x\r\nACCEPT:  application/openmetrics-text \r\n\r\n".utf8))
                == .request(HTTPRequestHead(method: "GET", path: "/metrics", accept: "application/openmetrics-text")))
        #expect(HTTPRequestHead.parse(Array("GET  /metrics HTTP/1.1\r\n\r\n".utf8)) == .malformed)
        #expect(HTTPRequestHead.parse(Array("get /metrics HTTP/1.1\r\n\r\n".utf8)) == .malformed)
        #expect(HTTPRequestHead.parse(Array("GET metrics HTTP/1.1\r\n\r\n".utf8)) == .malformed)
        #expect(HTTPRequestHead.parse(Array("GET /metrics HTTP/2\r\n\r\n".utf8)) == .malformed)
        #expect(HTTPRequestHead.parse([0xff, 0xfe, 0x20, 0x2f, 0x20, 0x0a, 0x0a]) == .malformed)
        #expect(HTTPRequestHead.parse([]) == .incomplete)
        #expect(HTTPRequestHead.parse([0x0a, 0x0a]) == .malformed)
    }

    /// Prometheus's own Accept header asks for OpenMetrics first; curl's default and a missing
    /// header get Prometheus text; a quality of 0 or a preferred text/plain keep Prometheus text.
    @Test func theAcceptHeaderChoosesTheFormat() {
        let prometheusServer = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
            + "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        #expect(MetricsFormat(accept: prometheusServer) == .openMetrics)
        #expect(MetricsFormat(accept: nil) == .prometheus)
        #expect(MetricsFormat(accept: "*/*") == .prometheus)
        #expect(MetricsFormat(accept: "application/openmetrics-text; q=0") == .prometheus)
        #expect(MetricsFormat(accept: "text/plain, application/openmetrics-text; q=0.5") == .prometheus)
        #expect(MetricsFormat(accept: ";;,,q=") == .prometheus)
    }

    /// Counters lose `_total` in their family's TYPE and HELP lines only, blank lines go, `# EOF` ends it.
    @Test func openMetricsTextNamesCounterFamiliesWithoutTotal() {
        let text = """
            # HELP lv_scans_total Scans.
            # TYPE lv_scans_total counter
            lv_scans_total 3

            # TYPE lv_bytes gauge
            lv_bytes{class="definitely_lost"} 32
            # TYPE lv_total_bytes gauge
            lv_total_bytes 1

            """
        #expect(OpenMetricsText.from(prometheus: text) == """
            # HELP lv_scans Scans.
            # TYPE lv_scans counter
            lv_scans_total 3
            # TYPE lv_bytes gauge
            lv_bytes{class="definitely_lost"} 32
            # TYPE lv_total_bytes gauge
            lv_total_bytes 1
            # EOF

            """)
    }
}
