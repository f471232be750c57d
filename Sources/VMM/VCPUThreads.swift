import Foundation

/// The machine's vCPU threads: started by `run()`, and joined before it returns. Each thread
/// counts itself out when its loop has ended, so the machine knows when no vCPU can touch guest
/// memory any more.
final class VCPUThreads: Sendable {
    private let condition = NSCondition()
    // SAFETY: `running` is read and written only with `condition` locked.
    private nonisolated(unsafe) var running: Set<Int> = []

    /// Starts `body` for vCPU `id` on a thread named `vcpu<id>` with an 8 MiB stack.
    func start(id: Int, _ body: @escaping @Sendable () -> Void) {
        condition.lock()
        running.insert(id)
        condition.unlock()
        let thread = Thread { [self] in
            body()
            condition.lock()
            running.remove(id)
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "vcpu\(id)"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Waits until every thread has left its loop, calling `kick` every `interval` seconds meanwhile,
    /// for at most `timeout` seconds. Returns the vCPUs still running then (sorted; empty when all
    /// were joined).
    func join(timeout: Double, interval: Double = 0.002, kick: () -> Void) -> [Int] {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while !running.isEmpty && Date() < deadline {
            condition.unlock()
            kick()
            condition.lock()
            if running.isEmpty { break }
            _ = condition.wait(until: min(deadline, Date(timeIntervalSinceNow: interval)))
        }
        return running.sorted()
    }
}
