import Foundation

/// What produced a journal: the program, its command line, the guest it ran and when.
public struct RunIdentity: Sendable, Codable, Equatable {
    public var leakvisorVersion: String
    public var commandLine: [String]
    /// Host paths of the guest kernel and initramfs (or root disk) the run booted.
    public var kernel: String?
    public var image: String?
    /// Wall-clock time (Unix seconds) when tracking started.
    public var startedUnixTime: Double
    public var hostName: String?

    public init(leakvisorVersion: String, commandLine: [String], kernel: String?, image: String?,
                startedUnixTime: Double = Date().timeIntervalSince1970, hostName: String? = ProcessInfo.processInfo.hostName) {
        self.leakvisorVersion = leakvisorVersion
        self.commandLine = commandLine
        self.kernel = kernel
        self.image = image
        self.startedUnixTime = startedUnixTime
        self.hostName = hostName
    }
}
