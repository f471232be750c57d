import Synchronization

/// A level-triggered interrupt line shared by several devices: high while any of them asserts it.
final class SharedIRQLine: Sendable {
    private let asserted = Mutex(Set<Int>())
    private let drive: @Sendable (Bool) -> Void

    init(drive: @escaping @Sendable (Bool) -> Void) { self.drive = drive }

    /// The `setIRQ` closure for device number `source`.
    func source(_ source: Int) -> @Sendable (Bool) -> Void {
        { high in
            self.asserted.withLock { set in
                if high { set.insert(source) } else { set.remove(source) }
                self.drive(!set.isEmpty)
            }
        }
    }
}
