/// How a guest run ended, with measurements taken along the way.
public struct MachineOutcome: Sendable {
    public enum Ending: Sendable, CustomStringConvertible {
        /// Guest init reported the command's exit status through the exit port.
        case exited(status: Int32)
        /// The guest reset itself (reboot, or a kernel panic with panic=-1) without reporting a status.
        case reset
        /// Triple fault or another shutdown the CPU could not survive.
        case shutdown
        case timedOut(seconds: Double)
        case interrupted
        /// The monitor could not continue; the error says why (with a register dump when relevant).
        case failed(VMMError)

        /// As Swift prints an enum case, with the failure's text quoted.
        public var description: String {
            switch self {
            case .exited(let status): return "exited(status: \(status))"
            case .reset: return "reset"
            case .shutdown: return "shutdown"
            case .timedOut(let seconds): return "timedOut(seconds: \(seconds))"
            case .interrupted: return "interrupted"
            case .failed(let error): return "failed(\(String(reflecting: error.description)))"
            }
        }
    }
    public var ending: Ending
    /// Seconds from the start of the vCPUs until guest init signalled that user space runs.
    public var secondsToUserSpace: Double?
    public var totalSeconds: Double
    public var syscallsCompleted: Int
    public var breakpointsReinjected: Int
    public var faultsPassedThrough: Int
    public var exits: Int
    /// vCPUs whose thread had not left its loop when `run()` gave up waiting for it (normally
    /// empty: `run()` returns after joining every vCPU thread).
    public var vcpusNotJoined: [Int] = []
}
