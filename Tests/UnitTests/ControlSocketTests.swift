@testable import Control
import Foundation
import Synchronization
import Testing

/// The control socket over real Unix sockets in temporary directories: who may own its
/// directory, who may connect, and what an idle, greedy or oversized client costs the others.
@Suite struct ControlSocketTests {
    /// A fresh private directory (mkdtemp: mode 0700) removed at the end of the test.
    final class TemporaryDirectory {
        let path: String
        init() throws {
            var template = Array("/tmp/lvctl-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw ControlError.system("mkdtemp", errno) }
            path = String(cString: made)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    /// Notes the server gave, for assertions.
    final class Notes: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
        func add(_ line: String) { lines.withLock { $0.append(line) } }
        /// Waits up to `seconds` for a note containing `text`.
        func wait(for text: String, seconds: Double = 5) -> Bool {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                if all.contains(where: { $0.contains(text) }) { return true }
                usleep(20_000)
            }
            return false
        }
    }

    static func echoServer(at path: String, limits: ControlServer.Limits = .init(), policy: PeerPolicy = .currentUser,
                           notes: Notes) throws -> ControlServer {
        try ControlServer(path: path, limits: limits, peerPolicy: policy, note: { notes.add($0) },
                          handler: { ControlResponse(error: "answered \($0)") })
    }

    static func connect(_ path: String) throws -> UnixSocket {
        let socket = try UnixSocket.make()
        try socket.connect(path)
        return socket
    }

    static func mode(_ path: String) -> UInt32? {
        var status = stat()
        return lstat(path, &status) == 0 ? status.st_mode : nil
    }

    // MARK: The socket's directory

    @Test func theDirectoryDecision() {
        let me: UInt32 = 1000
        #expect(SocketDirectory.problem(mode: UInt32(S_IFDIR) | 0o700, owner: me, expectedOwner: me) == nil)
        #expect(SocketDirectory.problem(mode: UInt32(S_IFLNK) | 0o777, owner: me, expectedOwner: me)?.contains("symbolic link") == true)
        #expect(SocketDirectory.problem(mode: UInt32(S_IFREG) | 0o700, owner: me, expectedOwner: me)?.contains("not a directory") == true)
        #expect(SocketDirectory.problem(mode: UInt32(S_IFDIR) | 0o700, owner: 1001, expectedOwner: me)?.contains("owned by uid 1001, not 1000") == true)
        #expect(SocketDirectory.problem(mode: UInt32(S_IFDIR) | 0o755, owner: me, expectedOwner: me)?.contains("0755") == true)
        #expect(SocketDirectory.problem(mode: UInt32(S_IFDIR) | 0o1701, owner: me, expectedOwner: me)?.contains("01701") == true)
        #expect(SocketDirectory.problem(mode: UInt32(S_IFDIR) | 0o500, owner: me, expectedOwner: me) != nil)
    }

    func expectRefused(_ directory: String, because why: String) {
        let notes = Notes()
        do {
            _ = try Self.echoServer(at: directory + "/m.sock", notes: notes)
            Issue.record("the monitor bound a socket in \(directory)")
        } catch {
            #expect("\(error)".contains("refusing the control socket directory \(directory): \(why)"), "\(error)")
        }
        do {
            _ = try ControlClient.send(.processes, to: directory + "/m.sock")
            Issue.record("the client connected through \(directory)")
        } catch {
            #expect("\(error)".contains(why), "\(error)")
        }
    }

    @Test func aDirectoryOthersMayEnterIsRefused() throws {
        let tmp = try TemporaryDirectory()
        let shared = tmp.path + "/shared"
        #expect(mkdir(shared, 0o700) == 0 && chmod(shared, 0o755) == 0)
        expectRefused(shared, because: "its mode is 0755")
    }

    @Test func aSymlinkToADirectoryIsRefused() throws {
        let tmp = try TemporaryDirectory()
        #expect(mkdir(tmp.path + "/real", 0o700) == 0)
        #expect(symlink(tmp.path + "/real", tmp.path + "/link") == 0)
        expectRefused(tmp.path + "/link", because: "it is a symbolic link")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to give a directory away"))
    func aDirectoryOfAnotherUserIsRefused() throws {
        let tmp = try TemporaryDirectory()
        let theirs = tmp.path + "/theirs"
        #expect(mkdir(theirs, 0o700) == 0 && chown(theirs, 65534, 65534) == 0)
        expectRefused(theirs, because: "it is owned by uid 65534, not 0")
    }

    /// `sudo -E` keeps the caller's XDG_RUNTIME_DIR: root must not put its socket there.
    @Test func onlyAPrivateRuntimeDirectoryOfOurOwnIsUsed() throws {
        let tmp = try TemporaryDirectory()
        #expect(ControlEndpoint.isPrivateRuntimeDirectory(tmp.path))
        #expect(!ControlEndpoint.isPrivateRuntimeDirectory("relative/dir"))
        #expect(!ControlEndpoint.isPrivateRuntimeDirectory(tmp.path + "/absent"))
        #expect(symlink(tmp.path, tmp.path + "/link") == 0)
        #expect(!ControlEndpoint.isPrivateRuntimeDirectory(tmp.path + "/link"))
        #expect(mkdir(tmp.path + "/open", 0o700) == 0 && chmod(tmp.path + "/open", 0o777) == 0)
        #expect(!ControlEndpoint.isPrivateRuntimeDirectory(tmp.path + "/open"))
        if geteuid() == 0 {
            #expect(mkdir(tmp.path + "/user", 0o700) == 0 && chown(tmp.path + "/user", 1000, 1000) == 0)
            #expect(!ControlEndpoint.isPrivateRuntimeDirectory(tmp.path + "/user"))
        }
    }

    @Test func anAbsentDirectoryIsCreatedPrivateAndTheSocketIsTheOwners() throws {
        let tmp = try TemporaryDirectory()
        let directory = tmp.path + "/new"
        let server = try Self.echoServer(at: directory + "/m.sock", notes: Notes())
        defer { server.stop() }
        #expect(Self.mode(directory).map { $0 & 0o7777 } == 0o700)
        #expect(Self.mode(directory + "/m.sock").map { $0 & UInt32(S_IFMT) } == UInt32(S_IFSOCK))
        #expect(Self.mode(directory + "/m.sock").map { $0 & 0o7777 } == 0o600)
        let answer = try ControlClient.send(.mappings(pid: 7), to: server.path)
        #expect(answer.error == "answered mappings(pid: 7)")
    }

    // MARK: Who may connect

    @Test func thePeerDecision() {
        let policy = PeerPolicy(ownerUID: 1000)
        #expect(policy.allows(uid: 1000))
        #expect(policy.allows(uid: 0))
        #expect(!policy.allows(uid: 1001))
        #expect(!policy.allows(uid: 65534))
        #expect(!PeerPolicy(ownerUID: 1000, allowsRoot: false).allows(uid: 0))
    }

    @Test func aClientOfAnotherUserGetsNoAnswer() throws {
        let tmp = try TemporaryDirectory()
        let notes = Notes()
        let asked = Mutex(0)
        let server = try ControlServer(path: tmp.path + "/m.sock", peerPolicy: PeerPolicy(ownerUID: 4242, allowsRoot: false),
                                       note: { notes.add($0) }, handler: { _ in asked.withLock { $0 += 1 }; return ControlResponse() })
        defer { server.stop() }
        let client = try Self.connect(server.path)
        try? client.writeAll(try ControlWire.encode(.processes))   // may fail: the monitor may have closed already
        #expect(throws: ControlError.self) { try client.readLine(limit: 1 << 20, deadline: IODeadline(secondsFromNow: 5)) }
        #expect(notes.wait(for: "uid \(geteuid()): only uid 4242 may ask"), "\(notes.all)")
        #expect(asked.withLock { $0 } == 0)
    }

    @Test func theClientRefusesAMonitorOfAnotherUser() throws {
        let tmp = try TemporaryDirectory()
        let server = try Self.echoServer(at: tmp.path + "/m.sock", notes: Notes())
        defer { server.stop() }
        do {
            _ = try ControlClient.send(.processes, to: server.path, peerPolicy: PeerPolicy(ownerUID: 4242, allowsRoot: false))
            Issue.record("the client took an answer from uid \(geteuid())")
        } catch {
            guard case .peerRejected(let uid) = error else { Issue.record("\(error)"); return }
            #expect(uid == geteuid())
        }
    }

    @Test(.enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
                   && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), "needs root, setpriv and python3"))
    func nobodyIsTurnedAway() throws {
        let tmp = try TemporaryDirectory()
        let notes = Notes()
        let server = try Self.echoServer(at: tmp.path + "/m.sock", notes: notes)
        defer { server.stop() }
        // Open the way (as a careless admin might) so that only SO_PEERCRED stands between them.
        #expect(chmod(tmp.path, 0o711) == 0 && chmod(server.path, 0o666) == 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", """
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.connect(sys.argv[1])
            try:
                s.sendall(b'{"processes":{}}\\n')
                answer = s.recv(4096)
            except (ConnectionResetError, BrokenPipeError):  # closed before or after the request
                answer = b''
            print("received", len(answer))
            """, server.path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(text == "received 0\n")
        #expect(notes.wait(for: "uid 65534: only uid 0 may ask"), "\(notes.all)")
    }

    // MARK: What one client may cost the others

    @Test func twoClientsAreAnsweredWhileAThirdIdles() throws {
        let tmp = try TemporaryDirectory()
        var limits = ControlServer.Limits()
        limits.requestSeconds = 30
        let server = try Self.echoServer(at: tmp.path + "/m.sock", limits: limits, notes: Notes())
        defer { server.stop() }
        let idle = try Self.connect(server.path)
        try idle.writeAll(Array("{\"proc".utf8))   // half a request, then nothing
        let started = Date()
        let answers = Mutex<[String]>([])
        // Raw clients with a deadline: a server that waits on the idle one fails this, not hangs.
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let answer = try? { () throws -> ControlResponse in
                let client = try Self.connect(server.path)
                try client.writeAll(try ControlWire.encode(.stacks(pid: Int32(i))))
                return try ControlWire.decodeResponse(try client.readLine(limit: 1 << 20, deadline: IODeadline(secondsFromNow: 10)))
            }()
            answers.withLock { $0.append(answer?.error ?? "no answer") }
        }
        #expect(answers.withLock { $0.sorted() } == ["answered stacks(pid: 0)", "answered stacks(pid: 1)"])
        #expect(Date().timeIntervalSince(started) < 10)
        _ = idle
    }

    @Test func anIdleClientIsDropped() throws {
        let tmp = try TemporaryDirectory()
        let notes = Notes()
        var limits = ControlServer.Limits()
        limits.requestSeconds = 0.3
        let server = try Self.echoServer(at: tmp.path + "/m.sock", limits: limits, notes: notes)
        defer { server.stop() }
        let idle = try Self.connect(server.path)
        let started = Date()
        do {
            _ = try idle.readLine(limit: 1 << 20, deadline: IODeadline(secondsFromNow: 10))
            Issue.record("an idle client got an answer")
        } catch {
            #expect("\(error)".contains("connection closed"), "\(error)")
        }
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(notes.wait(for: "dropped a control client that sent no complete request in 0.3 s"), "\(notes.all)")
    }

    @Test func anOversizedRequestIsRefused() throws {
        let tmp = try TemporaryDirectory()
        let notes = Notes()
        let server = try Self.echoServer(at: tmp.path + "/m.sock", notes: notes)
        defer { server.stop() }
        let client = try Self.connect(server.path)
        try? client.writeAll([UInt8](repeating: UInt8(ascii: "["), count: ControlWire.maxRequestBytes + 1))
        let line = try client.readLine(limit: 1 << 20, deadline: IODeadline(secondsFromNow: 10))
        let answer = try ControlWire.decodeResponse(line)
        #expect(answer.error == "control protocol: line longer than \(ControlWire.maxRequestBytes) bytes")
        #expect(notes.wait(for: "refused a control request longer than \(ControlWire.maxRequestBytes) bytes"), "\(notes.all)")
    }

    @Test func clientsBeyondTheLimitAreTurnedAway() throws {
        let tmp = try TemporaryDirectory()
        var limits = ControlServer.Limits()
        limits.connections = 2
        let server = try Self.echoServer(at: tmp.path + "/m.sock", limits: limits, notes: Notes())
        defer { server.stop() }
        let holders = try (0..<2).map { _ in try Self.connect(server.path) }
        let answer = try ControlClient.send(.processes, to: server.path)
        #expect(answer.error?.contains("busy with 2 other connections") == true, "\(answer.error ?? "")")
        _ = holders
    }

    // MARK: The wire

    @Test func theWireDecodesRequestsWithinBounds() throws {
        #expect(try ControlWire.decodeRequest(Array("{\"symbol\":{\"address\":4096,\"pid\":3}}".utf8)) == .symbol(address: 4096, pid: 3))
        let encoded = try ControlWire.encode(.report(allProcesses: true))
        #expect(encoded.last == 0x0A)
        #expect(try ControlWire.decodeRequest(Array(encoded.dropLast())) == .report(allProcesses: true))
        #expect(throws: ControlError.self) { try ControlWire.decodeRequest(Array("{\"format\":\"/\"}".utf8)) }
        #expect(throws: ControlError.self) { try ControlWire.decodeRequest([UInt8](repeating: 0x20, count: ControlWire.maxRequestBytes + 1)) }
        #expect(throws: ControlError.self) { try ControlWire.decodeRequest([0xFF, 0xFE, 0x00]) }
    }
}
