import Synchronization

/// The guest console's output as it arrives, for benchmarks that wait for marker lines in it.
final class ConsoleTranscript: Sendable {
    private let bytes = Mutex([UInt8]())

    /// Adds a chunk of output.
    func append(_ chunk: [UInt8]) {
        bytes.withLock { $0 += chunk }
    }

    /// Adds a chunk of output and returns everything so far (for a callback that looks for markers).
    func appending(_ chunk: [UInt8]) -> String {
        bytes.withLock { all -> String in
            all += chunk
            return String(decoding: all, as: UTF8.self)
        }
    }

    var text: String { bytes.withLock { String(decoding: $0, as: UTF8.self) } }
}
