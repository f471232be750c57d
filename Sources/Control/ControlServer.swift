import Foundation
import Synchronization

/// The monitor's side of the control channel: one JSON request per connection, each connection on
/// its own thread (up to `Limits.connections` at once), the answers computed one at a time by
/// `handler`. Only peers `peerPolicy` allows are served; an idle or slow client is dropped after
/// its deadline without holding up the others. Removes its socket when stopped.
public final class ControlServer: Sendable {
    /// Bounds on what one client may cost the monitor.
    public struct Limits: Sendable {
        /// Seconds a client has to send its whole request after connecting.
        public var requestSeconds: Double = 5
        /// Seconds a client has to take the whole answer.
        public var answerSeconds: Double = 60
        /// Connections served at once; more are turned away with an error answer.
        public var connections = 8
        public var requestBytes = ControlWire.maxRequestBytes

        public init() {}
    }

    public let path: String
    private let socket: UnixSocket
    private let state: ServerState

    /// Checks (or creates, mode 0700) the socket's directory, binds `path` and starts serving.
    /// `note` hears about clients turned away (another user, idle, oversized request).
    public init(path: String = ControlEndpoint.path(forMonitor: getpid()), limits: Limits = Limits(),
                peerPolicy: PeerPolicy = .currentUser, note: @escaping @Sendable (String) -> Void = { _ in },
                handler: @escaping @Sendable (ControlRequest) -> ControlResponse) throws(ControlError) {
        self.path = path
        try SocketDirectory.verify((path as NSString).deletingLastPathComponent, create: true)
        socket = try UnixSocket.make()
        try socket.bindAndListen(path)
        let state = ServerState(limits: limits, peerPolicy: peerPolicy, note: note, handler: handler)
        self.state = state
        let listener = socket
        let thread = Thread {
            while let connection = listener.accept() { state.admit(connection) }
        }
        thread.name = "control"
        thread.start()
    }

    /// Removes the socket file; later connections fail.
    public func stop() {
        unlink(path)
        shutdown(socket.fd, Int32(SHUT_RDWR))
    }
}

/// What the connection threads share: the limits, how many are open, and the handler's lock.
private final class ServerState: Sendable {
    let limits: ControlServer.Limits
    let peerPolicy: PeerPolicy
    let note: @Sendable (String) -> Void
    let handler: @Sendable (ControlRequest) -> ControlResponse
    let open = Mutex(0)
    /// The handler pauses the guest and reads its kernel: one question at a time.
    let answering = Mutex(())

    init(limits: ControlServer.Limits, peerPolicy: PeerPolicy, note: @escaping @Sendable (String) -> Void,
         handler: @escaping @Sendable (ControlRequest) -> ControlResponse) {
        self.limits = limits
        self.peerPolicy = peerPolicy
        self.note = note
        self.handler = handler
    }

    /// Serves `connection` on a thread of its own, or turns it away when too many are open.
    func admit(_ connection: UnixSocket) {
        let admitted = open.withLock { count -> Bool in
            guard count < limits.connections else { return false }
            count += 1
            return true
        }
        guard admitted else {
            note("turned away a control client: \(limits.connections) connections are open")
            answer(ControlResponse(error: "the monitor is busy with \(limits.connections) other connections; try again"),
                   on: connection, seconds: 0.1)
            return
        }
        let thread = Thread { [self] in
            serve(connection)
            open.withLock { $0 -= 1 }
        }
        thread.name = "control client"
        thread.start()
    }

    private func serve(_ connection: UnixSocket) {
        do {
            let peer = try PeerCredentials.of(socket: connection.fd)
            guard peerPolicy.allows(uid: peer.uid) else {
                note("closed a control connection from pid \(peer.pid) uid \(peer.uid): only uid \(peerPolicy.ownerUID)"
                     + (peerPolicy.allowsRoot && peerPolicy.ownerUID != 0 ? " and root" : "") + " may ask")
                return
            }
        } catch {
            note("closed a control connection: \(error)")
            return
        }
        let request: ControlRequest
        do throws(ControlError) {
            let line = try connection.readLine(limit: limits.requestBytes, deadline: IODeadline(secondsFromNow: limits.requestSeconds))
            request = try ControlWire.decodeRequest(line)
        } catch .timedOut {
            note("dropped a control client that sent no complete request in \(limits.requestSeconds) s")
            return
        } catch {
            if case .lineTooLong = error { note("refused a control request longer than \(limits.requestBytes) bytes") }
            answer(ControlResponse(error: "\(error)"), on: connection, seconds: 1)
            return
        }
        let response = answering.withLock { _ in handler(request) }
        answer(response, on: connection, seconds: limits.answerSeconds)
    }

    private func answer(_ response: ControlResponse, on connection: UnixSocket, seconds: Double) {
        guard let bytes = try? ControlWire.encode(response) else { return }
        do {
            try connection.writeAll(bytes, deadline: IODeadline(secondsFromNow: seconds))
        } catch {
            note("could not answer a control client: \(error)")
        }
    }
}
