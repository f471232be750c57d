import Foundation
import Synchronization

/// Where the guest's serial output goes: the monitor's stdout, plus a tail kept for error reports.
final class GuestConsole: Sendable {
    private let tail = Mutex([UInt8]())
    private let tailLimit = 4096
    private let sink: (@Sendable ([UInt8]) -> Void)?

    init(sink: (@Sendable ([UInt8]) -> Void)? = nil) {
        self.sink = sink
    }

    func write(_ bytes: [UInt8]) {
        if let sink { sink(bytes) } else { writeToStandardOutput(bytes) }
        tail.withLock { t in
            t += bytes
            if t.count > tailLimit { t.removeFirst(t.count - tailLimit) }
        }
    }

    private func writeToStandardOutput(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(1, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { if errno == EINTR { continue }; break }
                offset += n
            }
        }
    }

    /// The last few KiB the guest printed.
    var recentOutput: String { String(decoding: tail.withLock { $0 }, as: UTF8.self) }
}
