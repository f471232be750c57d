import Foundation
import GuestInterface
import KVM
import X86

/// Stops every vCPU outside KVM_RUN so the monitor sees one consistent guest, then lets them go.
/// vCPU threads call `parkIfRequested` at the top of their loop; a requester calls `pause`,
/// which kicks them out of KVM_RUN (also out of a halted wait) and waits for all to park.
// SAFETY: @unchecked Sendable: every mutable property is read and written only with `condition` locked.
final class GuestPause: @unchecked Sendable {
    private let condition = NSCondition()
    private var requests = 0
    /// Requests that need every in-flight exit completed (a snapshot), not just registers read.
    private var quiesceRequests = 0
    /// Parked vCPUs whose in-flight exit has been completed.
    private var quiesced: Set<Int> = []
    private var running = 0
    private var parked: [Int: VCPUSnapshot] = [:]
    private var captureErrors: [VCPUStateError] = []

    /// A vCPU loop starts or stops taking part.
    func join() { condition.lock(); running += 1; condition.unlock() }
    func leave() { condition.lock(); running -= 1; condition.broadcast(); condition.unlock() }

    /// Called by a vCPU thread between KVM_RUNs: parks it while a pause is requested. Where the
    /// host cannot save a vCPU's user-mode state (`userModeStateSavable` false: kvm_pvm keeps part
    /// of it outside the state ioctls), a vCPU in user mode does not park for a snapshot alone: it
    /// runs on until an exit finds it in the kernel (an interrupt, a system call, idle).
    func parkIfRequested(_ vcpu: VirtualCPU, userModeStateSavable: Bool = true) {
        condition.lock()
        defer { condition.unlock() }
        guard requests > 0 else { return }
        let me = vcpu.id
        let inUserMode = !userModeStateSavable && ((try? vcpu.specialRegisters().cs.dpl) ?? 0) == 3
        if inUserMode && requests == quiesceRequests { return }
        var completed = false
        func capture() {
            do {
                if quiesceRequests > 0, !inUserMode {
                    try vcpu.completePendingOperations()
                    completed = true
                    quiesced.insert(me)
                }
                parked[me] = try VCPUSnapshot.capture(vcpu)
            } catch {
                captureErrors.append(VCPUStateError(vcpu: me, error: error))
                parked[me] = nil
            }
            condition.broadcast()
        }
        capture()
        while requests > 0 {
            // Only a snapshot is left waiting and this vCPU cannot be saved here: go on running.
            if inUserMode && requests == quiesceRequests { break }
            // A snapshot requested while this vCPU was already parked for another pause.
            if quiesceRequests > 0, !completed, !inUserMode { capture() }
            condition.wait()
        }
        parked[me] = nil
        quiesced.remove(me)
        condition.broadcast()
    }

    /// Pauses all running vCPUs (kicking them with `kick`), waits up to `timeout` seconds, runs
    /// `body` with their snapshots, and resumes them. Nested or concurrent requests are fine.
    /// With `quiesce`, each vCPU first completes what its last exit left in flight, so that its
    /// KVM state can be saved (vCPUs already parked for another pause complete theirs then).
    func pause<T>(timeout: Double, quiesce: Bool = false, kick: () -> Void, _ body: ([VCPUSnapshot]) throws -> T) throws -> T {
        condition.lock()
        requests += 1
        if quiesce { quiesceRequests += 1 }
        condition.broadcast()
        condition.unlock()
        defer {
            condition.lock()
            requests -= 1
            if quiesce { quiesceRequests -= 1 }
            condition.broadcast()
            condition.unlock()
        }
        let deadline = Date(timeIntervalSinceNow: timeout)
        // The count is checked and the wait begun under one hold of the lock, so that a vCPU that
        // parks right after a kick wakes this at once (a park between an unlocked check and the
        // wait would be missed, and the pause would last another 10 ms).
        condition.lock()
        while (quiesce ? quiesced.count : parked.count) + captureErrors.count < running {
            guard Date() < deadline else {
                condition.unlock()
                throw VMMError.pauseTimedOut(seconds: timeout)
            }
            kick()
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.01))
        }
        let snapshots = parked.values.sorted { $0.index < $1.index }
        let errors = captureErrors
        captureErrors = []
        condition.unlock()
        if !errors.isEmpty { throw VMMError.vcpuStateUnreadable(errors) }
        return try body(snapshots)
    }
}
