import Glibc

/// Where the metrics listener binds: an IPv4 or IPv6 address and a port (0: any free port),
/// parsed from `HOST:PORT` (`127.0.0.1:9464`, `localhost:9464`, `[::1]:9464`, `:9464` for
/// 127.0.0.1). Host names other than localhost are refused: nothing is resolved.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public enum Family: Sendable, Equatable { case ipv4, ipv6 }
    public var family: Family
    /// The address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    public var bytes: [UInt8]
    public var port: UInt16

    public init(parsing text: String) throws(MetricsError) {
        guard let colon = text.lastIndex(of: ":") else { throw .badAddress(text, "expected HOST:PORT, e.g. 127.0.0.1:9464") }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy(\.isASCII), let port = UInt16(portText) else {
            throw .badAddress(text, "the port must be a number from 0 to 65535")
        }
        self.port = port
        if host.hasPrefix("[") && host.hasSuffix("]") && host.count >= 2 {
            host = String(host.dropFirst().dropLast())
            family = .ipv6
        } else {
            family = .ipv4
        }
        if host.isEmpty || host == "localhost" { host = family == .ipv6 ? "::1" : "127.0.0.1" }
        guard let parsed = Self.parse(host, family) else {
            throw .badAddress(text, family == .ipv6 ? "not an IPv6 address" : "the host must be an IP address or localhost; write IPv6 as [ADDRESS]")
        }
        bytes = parsed
    }

    private static func parse(_ host: String, _ family: Family) -> [UInt8]? {
        var storage = [UInt8](repeating: 0, count: 16)
        // SAFETY: inet_pton writes at most 4 (AF_INET) or 16 (AF_INET6) bytes; the buffer has 16.
        let r = storage.withUnsafeMutableBytes { inet_pton(family == .ipv4 ? AF_INET : AF_INET6, host, $0.baseAddress) }
        guard r == 1 else { return nil }
        return Array(storage.prefix(family == .ipv4 ? 4 : 16))
    }

    /// 127.0.0.0/8 or ::1: reachable from this machine only.
    public var isLoopback: Bool {
        switch family {
        case .ipv4: return bytes.first == 127
        case .ipv6: return bytes == [UInt8](repeating: 0, count: 15) + [1]
        }
    }

    /// The same address with another port (the one the kernel chose for port 0).
    public func with(port: UInt16) -> ListenAddress {
        var copy = self
        copy.port = port
        return copy
    }

    /// `127.0.0.1:9464`, `[::1]:9464`.
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        // SAFETY: inet_ntop reads 4 or 16 bytes (the array holds that many) and writes at most
        // INET6_ADDRSTRLEN bytes with the NUL.
        let written = bytes.withUnsafeBytes { raw in
            text.withUnsafeMutableBufferPointer { out in
                inet_ntop(family == .ipv4 ? AF_INET : AF_INET6, raw.baseAddress, out.baseAddress, socklen_t(out.count)) != nil
            }
        }
        let host = written ? String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        return family == .ipv4 ? "\(host):\(port)" : "[\(host)]:\(port)"
    }
}
