/// Which guest process an address space belongs to, as first seen by the ledger.
public struct ProcessIdentity: Sendable, Codable, Equatable {
    public var pid: Int32
    public var command: String

    public init(pid: Int32, command: String) {
        self.pid = pid
        self.command = command
    }
}

/// Why an address space's blocks left the live ledger.
public enum AddressSpaceEnd: String, Sendable, Codable {
    /// Still running when the ledger was read.
    case live
    /// The process exited or exec'd: its memory was torn down with these blocks outstanding.
    case exited
    /// The guest stopped (shut down, crashed or was stopped by the monitor) with the process alive.
    case guestStopped = "guest stopped"
}
