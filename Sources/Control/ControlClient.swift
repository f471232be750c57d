import Foundation

/// `leakvisor inspect`'s side: sends one request to a running monitor and waits for the answer.
public enum ControlClient {
    /// The monitor to talk to: `pid` if given, else the only live one.
    public static func resolve(session pid: Int32?) throws(ControlError) -> String {
        let live = ControlEndpoint.liveSessions()
        if let pid {
            guard live.contains(pid) else { throw .noSuchSession(pid) }
            return ControlEndpoint.path(forMonitor: pid)
        }
        guard let only = live.first else { throw .noSession }
        guard live.count == 1 else { throw .severalSessions(live) }
        return ControlEndpoint.path(forMonitor: only)
    }

    public static func send(_ request: ControlRequest, to path: String) throws -> ControlResponse {
        let socket = try UnixSocket.make()
        try socket.connect(path)
        var bytes = try JSONEncoder().encode(request)
        bytes.append(0x0A)
        try socket.writeAll([UInt8](bytes))
        let line = try socket.readLine(limit: 256 << 20)
        return try JSONDecoder().decode(ControlResponse.self, from: Data(line))
    }
}
