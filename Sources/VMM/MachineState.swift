import Foundation
import Synchronization

/// Shared run state of a machine: the first ending wins; everyone else sees `stopping`.
final class MachineState: Sendable {
    private struct Inner {
        var ending: MachineOutcome.Ending?
        var userSpaceAt: ContinuousClock.Instant?
        var userSpaceReported = false
        var threads: [pthread_t] = []
        var exits = 0
        var syscalls = 0
        var reinjected = 0
        var faults = 0
        var trapHandlerActive = false
    }
    private let inner = Mutex(Inner())
    let finished = DispatchSemaphore(value: 0)
    let startedAt = ContinuousClock.now
    let pause = GuestPause()
    /// Told of each boot stage once (from any thread).
    let bootStages: (@Sendable (BootStage) -> Void)?

    init(bootStages: (@Sendable (BootStage) -> Void)? = nil, trapHandlerActive: Bool = true) {
        self.bootStages = bootStages
        inner.withLock { $0.trapHandlerActive = trapHandlerActive }
    }

    var stopping: Bool { inner.withLock { $0.ending != nil } }

    /// Whether the machine's trap handler (allocation tracking) may act yet: from the start, or
    /// once the guest took its payload when the configuration says tracking starts there.
    var trapHandlerActive: Bool { inner.withLock { $0.trapHandlerActive } }
    func activateTrapHandler() { inner.withLock { $0.trapHandlerActive = true } }

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

    /// The image's init said it runs (through the control page): the moment the boot figures
    /// measure to. Reports the boot stage unless a vCPU saw user space first.
    func markUserSpace() {
        inner.withLock { if $0.userSpaceAt == nil { $0.userSpaceAt = .now } }
        noteUserSpaceSeen()
    }

    /// User space is running (seen by a vCPU or said by init): reports the boot stage once.
    func noteUserSpaceSeen() {
        let first = inner.withLock { s -> Bool in
            guard !s.userSpaceReported else { return false }
            s.userSpaceReported = true
            return true
        }
        if first { bootStages?(.userSpaceReached) }
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
