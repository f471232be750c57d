import Glibc

/// Why a conversation with a GDB remote stub failed.
public enum GDBRemoteError: Error, Equatable, CustomStringConvertible {
    case connect(host: String, port: UInt16, errno: Int32)
    case io(operation: String, errno: Int32)
    case closed
    case timedOut(waitingFor: String, seconds: Double)
    /// A packet longer than `GDBRemoteConnection.maximumPacket` or with a bad checksum or framing.
    case malformed(String)
    /// The stub answered `Exx` or an empty packet (unsupported) to `request`.
    case refused(request: String, reply: String)
    /// A register block that does not have the layout this client knows.
    case unexpectedRegisters(bytes: Int, expected: Int)

    public var description: String {
        switch self {
        case .connect(let host, let port, let errno): return "cannot connect to the gdbstub at \(host):\(port): \(String(cString: strerror(errno)))"
        case .io(let operation, let errno): return "gdbstub \(operation) failed: \(String(cString: strerror(errno)))"
        case .closed: return "the gdbstub closed the connection (the VM ended or another debugger took over)"
        case .timedOut(let what, let seconds): return "no answer from the gdbstub to \(what) within \(seconds) s"
        case .malformed(let why): return "malformed packet from the gdbstub: \(why)"
        case .refused(let request, let reply):
            return reply.isEmpty ? "the gdbstub does not support '\(request)'" : "the gdbstub refused '\(request)': \(reply)"
        case .unexpectedRegisters(let bytes, let expected):
            return "the gdbstub's register block has \(bytes) bytes, not the \(expected) of QEMU's x86-64 layout"
        }
    }
}
