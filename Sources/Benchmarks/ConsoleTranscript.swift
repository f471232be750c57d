import Foundation

/// The guest console's output as it arrives, for benchmarks that wait for marker lines in it: the
/// console callback appends, a worker that acts on the machine waits for a marker.
public final class ConsoleTranscript: @unchecked Sendable {
    // SAFETY: `bytes` and `closed` are read and written only with `condition` locked.
    private let condition = NSCondition()
    private var bytes: [UInt8] = []
    private var closed = false

    public init() {}

    /// Adds a chunk of output.
    public func append(_ chunk: [UInt8]) {
        _ = appending(chunk)
    }

    /// Adds a chunk of output and returns everything so far (for a callback that looks for markers).
    public func appending(_ chunk: [UInt8]) -> String {
        condition.lock()
        defer { condition.unlock() }
        bytes += chunk
        condition.broadcast()
        return String(decoding: bytes, as: UTF8.self)
    }

    public var text: String {
        condition.lock()
        defer { condition.unlock() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Blocks until the output holds `marker` `occurrences` times (true) or the transcript is
    /// closed first (false).
    public func wait(for marker: String, occurrences: Int = 1) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if String(decoding: bytes, as: UTF8.self).components(separatedBy: marker).count - 1 >= occurrences { return true }
            if closed { return false }
            condition.wait()
        }
    }

    /// No more output will come (the guest stopped): wakes every waiter.
    public func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}
