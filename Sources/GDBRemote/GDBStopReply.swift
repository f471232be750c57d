/// Why the stub says the target stopped (`T`/`S` replies), or that it ended (`W`/`X`).
public enum GDBStopReply: Equatable, Sendable {
    /// Stopped with `signal` (5: a breakpoint or step; 2: an interrupt); `thread` as the stub names it
    /// (QEMU: one thread per vCPU, `p1.N` in multiprocess form), nil when it named none.
    case stopped(signal: UInt8, thread: String?)
    /// The target exited (`W`) or was terminated (`X`).
    case ended(String)

    /// Parses a stop reply; nil for any other packet.
    public init?(_ packet: String) {
        guard let kind = packet.first else { return nil }
        switch kind {
        case "T", "S":
            let digits = packet.dropFirst().prefix(2)
            guard digits.count == 2, let signal = UInt8(digits, radix: 16) else { return nil }
            var thread: String?
            for field in packet.dropFirst(3).split(separator: ";") {
                let parts = field.split(separator: ":", maxSplits: 1)
                if parts.count == 2, parts[0] == "thread" { thread = String(parts[1]) }
            }
            self = .stopped(signal: signal, thread: thread)
        case "W", "X":
            self = .ended(packet)
        default:
            return nil
        }
    }
}
