import Synchronization

/// Who hears that a tracked process exited (after its exit scan, on the vCPU that ran the exit):
/// set once the session exists; it must return at once.
public final class ExitObserver: Sendable {
    private let handler = Mutex<(@Sendable () -> Void)?>(nil)

    public init() {}

    public func observe(_ body: @escaping @Sendable () -> Void) { handler.withLock { $0 = body } }

    func notify() { handler.withLock { $0 }?() }
}
