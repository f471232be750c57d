import Foundation

/// Developer tracing of exits to stderr, on when LEAKVISOR_TRACE is set.
enum Trace {
    static let enabled = ProcessInfo.processInfo.environment["LEAKVISOR_TRACE"] != nil

    static func log(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}
