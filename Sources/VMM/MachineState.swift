import Foundation
import Synchronization

/// Shared run state of a machine: the first ending wins; everyone else sees `stopping`.
final class MachineState: Sendable {
    private struct Inner {
        var ending: MachineOutcome.Ending?
        var userSpaceAt: ContinuousClock.Instant?
        var threads: [pthread_t] = []
        var exits = 0
        var syscalls = 0
        var reinjected = 0
        var faults = 0
    }
    private let inner = Mutex(Inner())
    let finished = DispatchSemaphore(value: 0)
    let startedAt = ContinuousClock.now
    let pause = GuestPause()

    var stopping: Bool { inner.withLock { $0.ending != nil } }

    /// Records the ending if none was recorded yet and wakes the waiter. Returns whether it won.
    @discardableResult
    func finish(_ ending: MachineOutcome.Ending) -> Bool {
        let won = inner.withLock { s -> Bool in
            guard s.ending == nil else { return false }
            s.ending = ending
            return true
        }
        if won { finished.signal() }
        return won
    }

    var ending: MachineOutcome.Ending? { inner.withLock { $0.ending } }

    func markUserSpace() {
        inner.withLock { if $0.userSpaceAt == nil { $0.userSpaceAt = .now } }
    }

    var secondsToUserSpace: Double? {
        inner.withLock { s in s.userSpaceAt.map { seconds(since: startedAt, until: $0) } }
    }

    func register(thread: pthread_t) { inner.withLock { $0.threads.append(thread) } }
    var threads: [pthread_t] { inner.withLock { $0.threads } }

    func add(exits: Int, statistics: VCPUAssistant.Statistics) {
        inner.withLock {
            $0.exits += exits
            $0.syscalls += statistics.syscallsCompleted
            $0.reinjected += statistics.breakpointsReinjected
            $0.faults += statistics.faultsPassedThrough
        }
    }

    func outcome(totalSeconds: Double) -> MachineOutcome {
        inner.withLock { s in
            MachineOutcome(ending: s.ending ?? .interrupted,
                           secondsToUserSpace: s.userSpaceAt.map { seconds(since: startedAt, until: $0) },
                           totalSeconds: totalSeconds, syscallsCompleted: s.syscalls,
                           breakpointsReinjected: s.reinjected, faultsPassedThrough: s.faults, exits: s.exits)
        }
    }
}

func seconds(since start: ContinuousClock.Instant, until end: ContinuousClock.Instant = .now) -> Double {
    let d = end - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
