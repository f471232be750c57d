import Glibc

/// Failures of the monitor's control channel.
public enum ControlError: Error, CustomStringConvertible, Sendable {
    case system(String, Int32)
    case pathTooLong(String)
    case noSession
    case severalSessions([Int32])
    case noSuchSession(Int32)
    case protocolViolation(String)
    /// A message (`what`: request or answer) that JSON could not encode.
    case unencodable(what: String, underlying: any Error)
    /// A line that is not a valid message (`what`: request or answer) in JSON.
    case undecodable(what: String, underlying: any Error)
    /// The socket directory exists but is not one only we control (owner, mode, symlink).
    case unsafeDirectory(path: String, why: String)
    /// The other end of the socket runs as a user we do not talk to.
    case peerRejected(uid: UInt32)
    /// The other end sent nothing (or too little) before the deadline.
    case timedOut(String)
    /// A request or answer line longer than the protocol allows.
    case lineTooLong(limit: Int)

    public var description: String {
        switch self {
        case .system(let call, let err): return "\(call): \(String(cString: strerror(err)))"
        case .pathTooLong(let p): return "socket path too long: \(p)"
        case .noSession: return "no running leakvisor monitor found (start one with `leakvisor run`)"
        case .severalSessions(let pids):
            return "several monitors are running (\(pids.map(String.init).joined(separator: ", "))); choose one with --session PID"
        case .noSuchSession(let pid): return "no leakvisor monitor with PID \(pid) is listening"
        case .protocolViolation(let why): return "control protocol: \(why)"
        case .unencodable(let what, let error): return "control protocol: cannot encode the \(what): \(error)"
        case .undecodable(let what, let error): return "control protocol: bad \(what): \(error)"
        case .unsafeDirectory(let path, let why):
            return "refusing the control socket directory \(path): \(why); remove it (or set XDG_RUNTIME_DIR to a directory of your own)"
        case .peerRejected(let uid): return "the other end of the control socket runs as uid \(uid), neither this user nor root"
        case .timedOut(let what): return "control socket: timed out \(what)"
        case .lineTooLong(let limit): return "control protocol: line longer than \(limit) bytes"
        }
    }
}
