import Glibc

/// Why the metrics listener could not start.
public enum MetricsError: Error, Equatable, CustomStringConvertible {
    /// `--metrics-listen` is not HOST:PORT with an IP address (or localhost) and a port 0-65535.
    case badAddress(String, String)
    case system(String, Int32)

    public var description: String {
        switch self {
        case .badAddress(let text, let why): return "bad metrics address '\(text)': \(why)"
        case .system(let call, let code): return "\(call): \(String(cString: strerror(code)))"
        }
    }
}
