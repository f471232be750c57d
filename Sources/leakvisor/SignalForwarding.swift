import Foundation

/// Ctrl-C and SIGTERM end the session cleanly instead of killing the monitor mid-run (`stop`: the
/// report is still printed); SIGUSR1 asks for a report now (`report`).
final class SignalForwarding {
    private let sources: [any DispatchSourceSignal]

    init(stop: @escaping @Sendable () -> Void, report: @escaping @Sendable () -> Void) {
        sources = [(SIGINT, stop), (SIGTERM, stop), (SIGUSR1, report)].map { sig, handler in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        }
    }

    func cancel() { sources.forEach { $0.cancel() } }
}
