import Glibc

/// Failures of the monitor's control channel.
public enum ControlError: Error, CustomStringConvertible, Sendable {
    case system(String, Int32)
    case pathTooLong(String)
    case noSession
    case severalSessions([Int32])
    case noSuchSession(Int32)
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .system(let call, let err): return "\(call): \(String(cString: strerror(err)))"
        case .pathTooLong(let p): return "socket path too long: \(p)"
        case .noSession: return "no running leakvisor monitor found (start one with `leakvisor run`)"
        case .severalSessions(let pids):
            return "several monitors are running (\(pids.map(String.init).joined(separator: ", "))); choose one with --session PID"
        case .noSuchSession(let pid): return "no leakvisor monitor with PID \(pid) is listening"
        case .protocolViolation(let why): return "control protocol: \(why)"
        }
    }
}
