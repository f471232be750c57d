import AllocationTracing
import Foundation
import QEMUBackend
import Synchronization

/// Keeps a libvirt attach's `AttachRecord` on disk up to date, from the backend's loop thread
/// while the guest is stopped (the tracker's state then matches guest memory).
final class AttachRecorder: Sendable {
    private let uri: String, domain: String, qemuProcessID: Int32, gdbPort: UInt16, vmlinux: String
    private let tracker: UserAllocationTracker
    private let guest: QEMUGuest
    private let lastSaved = Mutex<ContinuousClock.Instant?>(nil)

    init(uri: String, domain: String, qemuProcessID: Int32, gdbPort: UInt16, vmlinux: String, tracker: UserAllocationTracker,
         guest: QEMUGuest) {
        self.tracker = tracker
        self.guest = guest
        (self.uri, self.domain, self.qemuProcessID, self.gdbPort, self.vmlinux) = (uri, domain, qemuProcessID, gdbPort, vmlinux)
    }

    /// Saves now, or only when the last save is at least `seconds` old.
    func save(ifOlderThan seconds: Double = 0) {
        let now = ContinuousClock.now
        guard lastSaved.withLock({ last in
            if let last, seconds > 0, now - last < .seconds(seconds) { return false }
            last = now
            return true
        }), let state = tracker.savedState() else { return }
        let record = AttachRecord(uri: uri, domain: domain, qemuProcessID: qemuProcessID, gdbPort: gdbPort, vmlinux: vmlinux,
                                  breakpoints: guest.breakpointAddresses, tracker: state)
        do {
            try record.save()
        } catch {
            MonitorOutput.say("note: cannot write the attach record \(AttachRecord.path(domain: record.domain)): \(error)")
        }
    }
}
