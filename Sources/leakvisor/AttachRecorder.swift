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

    /// From now on, writes ahead of the tracker: the whole record before new breakpoints reach
    /// the guest, the journal of calls in flight before each trampoline does (between those the
    /// record is saved at most every second).
    func journal() {
        let path = AttachRecord.callsPath(domain: domain)
        let file: CallJournalFile?
        do {
            file = try CallJournalFile(path: path)
        } catch {
            MonitorOutput.say("note: cannot write the journal of calls \(path): \(error); the attach record is saved before each call instead")
            file = nil
        }
        let failed = Atomic<Bool>(false)
        tracker.setJournal(TrackerJournal(breakpoints: { [self] in save() }, calls: { [self] calls in
            // No journal file: the whole record then, before each trampoline (slower, never wrong).
            guard let file else { return save() }
            do {
                try file.write(calls)
            } catch {
                // The journal must never be older than the record (a recovery prefers its word):
                // emptied, and the whole record saved now instead.
                file.invalidate()
                save()
                if !failed.exchange(true, ordering: .relaxed) {
                    MonitorOutput.say("note: cannot write the journal of calls \(path): \(error); the attach record is saved instead")
                }
            }
        }))
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
