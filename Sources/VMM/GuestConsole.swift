import Foundation

/// Where the guest's serial output goes: a caller-supplied sink, or the monitor's stdout.
final class GuestConsole: Sendable {
    private let sink: (@Sendable ([UInt8]) -> Void)?

    init(sink: (@Sendable ([UInt8]) -> Void)? = nil) {
        self.sink = sink
    }

    func write(_ bytes: [UInt8]) {
        if let sink { sink(bytes) } else { writeToStandardOutput(bytes) }
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
}
