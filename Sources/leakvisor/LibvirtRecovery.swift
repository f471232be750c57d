import AllocationTracing
import Foundation
import Introspection
import Libvirt
import Monitor
import QEMUBackend

/// `leakvisor detach DOMAIN`: puts back what a libvirt attach whose monitor died had changed in
/// the domain, from its `AttachRecord`: the threads stopped at its breakpoints go on as it would
/// have let them, every patched byte and replaced return address is restored, its gdbstub
/// breakpoints are removed and the guest runs on.
struct LibvirtRecovery {
    var uri: String
    var domainName: String

    func run() throws -> ArmingSummary {
        guard let record = AttachRecord.load(domain: domainName) else { throw LibvirtAttach.Failure.noRecord(domainName) }
        let domain = try LibvirtConnection(uri: uri).domain(named: domainName)
        let pid = try domain.qemuProcessID()
        guard pid == record.qemuProcessID else {
            AttachRecord.remove(domain: domainName)
            throw LibvirtAttach.Failure.noRecord(domainName + "' (the domain was restarted since: its QEMU process is another")
        }
        let (guest, _) = try LibvirtAttach.openGuest(domain, qemuProcessID: pid, existingPort: record.gdbPort)
        defer { _ = try? domain.humanMonitorCommand("gdbserver none") }
        let tracking = try TrackingSession.prepare(vmlinux: record.vmlinux, kernelSymbolFile: nil, files: GuestSymbolFiles(roots: []),
                                                   options: TrackingOptions(), output: SessionOutput(line: { _ in }, text: { _ in }))
        guard let entry = tracking.kernel.systemCallEntry(breakpointHandler: try guest.breakpointHandler()) else {
            throw LibvirtAttach.Failure.unknownKernel
        }
        guest.setSystemCallEntry(entry)
        let tracker = tracking.tracker
        tracker.restore(record.tracker)
        // Calls that began after the record's last save: their trampolines may be in the guest.
        if let journaled = CallJournalFile.read(path: AttachRecord.callsPath(domain: domainName)) { tracker.adopt(journaled) }
        guest.installTrapHandler(tracker)
        try guest.adopt(breakpoints: record.breakpoints)
        let summary = try guest.withGuestPaused(timeout: 10) { tracker.disarm($0) }
        guest.installTrapHandler(nil)
        guest.release()
        AttachRecord.remove(domain: domainName)
        return summary
    }
}
