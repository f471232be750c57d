import Foundation

/// The monitor's side of the control channel: accepts one JSON request per connection on a
/// background thread, answers through `handler`, and removes its socket when stopped.
public final class ControlServer: @unchecked Sendable {
    public let path: String
    private let socket: UnixSocket

    /// Binds `path` (creating its directory with mode 0700) and starts serving.
    public init(path: String = ControlEndpoint.path(forMonitor: getpid()),
                handler: @escaping @Sendable (ControlRequest) -> ControlResponse) throws(ControlError) {
        self.path = path
        let directory = (path as NSString).deletingLastPathComponent
        mkdir(directory, 0o700)
        socket = try UnixSocket.make()
        try socket.bindAndListen(path)
        let listener = socket
        let thread = Thread {
            while let connection = listener.accept() {
                Self.serve(connection, handler: handler)
            }
        }
        thread.name = "control"
        thread.start()
    }

    private static func serve(_ connection: UnixSocket, handler: (ControlRequest) -> ControlResponse) {
        let response: ControlResponse
        do {
            let line = try connection.readLine(limit: 1 << 20)
            let request = try JSONDecoder().decode(ControlRequest.self, from: Data(line))
            response = handler(request)
        } catch {
            response = ControlResponse(error: "bad request: \(error)")
        }
        guard var bytes = try? JSONEncoder().encode(response) else { return }
        bytes.append(0x0A)
        try? connection.writeAll([UInt8](bytes))
    }

    /// Removes the socket file; later connections fail.
    public func stop() {
        unlink(path)
        shutdown(socket.fd, Int32(SHUT_RDWR))
    }
}
