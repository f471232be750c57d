import Foundation
import Synchronization

/// Where the guest's serial output goes: a caller-supplied sink, or the monitor's stdout. On a
/// terminal the bytes go through a `TerminalSanitizer` (no escape sequence from the guest reaches
/// the terminal); to a pipe or file they go exactly as the guest wrote them.
final class GuestConsole: Sendable {
    private let sink: (@Sendable ([UInt8]) -> Void)?
    private let sanitizer: Mutex<TerminalSanitizer>?
    /// Called before each write (the monitor clears its status line from the terminal).
    private let willWrite: (@Sendable () -> Void)?

    init(sink: (@Sendable ([UInt8]) -> Void)? = nil, sanitizing: Bool? = nil, willWrite: (@Sendable () -> Void)? = nil) {
        self.sink = sink
        self.willWrite = willWrite
        let terminal = sanitizing ?? (sink == nil && isatty(1) == 1)
        sanitizer = terminal ? Mutex(TerminalSanitizer()) : nil
    }

    func write(_ bytes: [UInt8]) {
        let shown = sanitizer?.withLock { $0.sanitize(bytes) } ?? bytes
        willWrite?()
        if let sink { sink(shown) } else { writeToStandardOutput(shown) }
    }

    private func writeToStandardOutput(_ bytes: [UInt8]) {
        // SAFETY: write() reads raw.count - offset bytes from base + offset, within the array's buffer.
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(1, base + offset, raw.count - offset)
                if n <= 0 { if errno == EINTR { continue }; break }
                offset += n
            }
        }
    }
}
