import Foundation

/// `leakvisor inspect`'s side: sends one request to a running monitor and waits for the answer.
public enum ControlClient {
    /// The monitor to talk to: `pid` if given, else the only live one.
    public static func resolve(session pid: Int32?) throws(ControlError) -> String {
        let live = try ControlEndpoint.liveSessions()
        if let pid {
            guard live.contains(pid) else { throw .noSuchSession(pid) }
            return ControlEndpoint.path(forMonitor: pid)
        }
        guard let only = live.first else { throw .noSession }
        guard live.count == 1 else { throw .severalSessions(live) }
        return ControlEndpoint.path(forMonitor: only)
    }

    /// Checks the socket's directory (ours, 0700, no symlink) and, once connected, that the
    /// monitor runs as this user or root, so a forged server cannot answer.
    public static func send(_ request: ControlRequest, to path: String, peerPolicy: PeerPolicy = .currentUser) throws(ControlError) -> ControlResponse {
        let directory = (path as NSString).deletingLastPathComponent
        guard try SocketDirectory.verify(directory, create: false) else { throw .system("connect \(path)", ENOENT) }
        let socket = try UnixSocket.make()
        try socket.connect(path)
        let server = try PeerCredentials.of(socket: socket.fd)
        guard peerPolicy.allows(uid: server.uid) else { throw .peerRejected(uid: server.uid) }
        let bytes: [UInt8]
        do { bytes = try ControlWire.encode(request) } catch { throw .unencodable(what: "request", underlying: error) }
        // A monitor that turns us away (busy) answers and closes without reading: its answer
        // still explains more than our broken pipe.
        var writeFailure: ControlError?
        do { try socket.writeAll(bytes) } catch { writeFailure = error }
        let line: [UInt8]
        do { line = try socket.readLine(limit: ControlWire.maxResponseBytes) } catch { throw writeFailure ?? error }
        return try ControlWire.decodeResponse(line)
    }
}
