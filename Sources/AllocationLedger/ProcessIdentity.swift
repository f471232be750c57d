/// Which guest process an address space belongs to, as first seen by the ledger.
public struct ProcessIdentity: Sendable, Codable, Equatable {
    public var pid: Int32
    /// The program's name: the main executable's file name, else the kernel's 15-character `comm`.
    public var command: String
    /// Guest path of the main executable, when known.
    public var executable: String?

    public init(pid: Int32, command: String, executable: String? = nil) {
        self.pid = pid
        self.command = executable.map { String($0.split(separator: "/").last ?? Substring(command)) } ?? command
        self.executable = executable
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
