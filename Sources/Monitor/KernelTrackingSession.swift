import AllocationLedger
import AllocationTracing
import Foundation
import GuestInterface
import Introspection
import Synchronization

/// Kernel allocation tracking of one running guest (`--track kernel` / `all`): the tracker the
/// guest's vCPUs call (through a `TrapHandlerChain` beside the user tracker), the line said when
/// it armed, `detach`, and the closing summary.
public final class KernelTrackingSession: Sendable {
    public let tracker: KernelAllocationTracker
    let output: SessionOutput
    /// What the kernel leak scans run on: the guest, the interval, its write log, the timer.
    let scans = Mutex(KernelScanSetup())
    /// What they keep between scans (the scanner's state, the latest verdicts, names), held for a
    /// whole scan: one scan at a time (timer, `leakvisor report`, detach and the end of the run).
    let scanning = Mutex(KernelScanResults())

    /// Loads the guest kernel's symbols and BTF (or takes `kernel` already loaded) and makes the tracker.
    public static func prepare(vmlinux: String, kernelSymbolFile: String?, kernel: GuestKernel? = nil,
                               output: SessionOutput) throws -> KernelTrackingSession {
        let started = Date()
        let loaded = try kernel ?? GuestKernel.load(vmlinux: vmlinux, symbolFile: kernelSymbolFile)
        if kernel == nil {
            output.line("tracking kernel allocations; guest kernel symbols and BTF read in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        }
        return KernelTrackingSession(tracker: KernelAllocationTracker(kernel: loaded), output: output)
    }

    public init(tracker: KernelAllocationTracker, output: SessionOutput) {
        self.tracker = tracker
        self.output = output
        let say = output.line
        tracker.onArmed { [weak self] outcome in
            switch outcome {
            case .success(let summary):
                defer { self?.startScanning() }
                say("kernel armed: tracepoints \(summary.tracepoints.joined(separator: ", ")) enabled, \(summary.jumpSites) jump-label"
                    + " site(s) patched, entry hooks on \(summary.entryHooks.joined(separator: ", "))")
                for note in summary.notes { say("kernel tracking: \(note)") }
            case .failure(let error):
                say("kernel allocation tracking could not start: \(error)")
            }
        }
    }

    /// The summary of the kernel ledger now.
    public func summary() -> KernelLedgerSummary {
        let tracker = self.tracker
        return KernelLedgerSummary(ledger: tracker.ledger.snapshot(), counters: tracker.statistics, describe: { tracker.describe($0) })
    }

    /// Prints the summary (the end of a run).
    public func printSummary() {
        output.text(summary().text)
    }

    /// Puts back every kernel byte the tracker changed, with the guest paused, and stops the scans.
    public func detach(_ guest: any InspectableGuest) throws -> KernelRestoreSummary {
        try scanning.withLock { _ in
            var summary = try guest.withGuestPaused(timeout: 10) { tracker.disarm($0) }
            stopScanning()
            do {
                if let reader = scans.withLock({ s in defer { s.writeLog = nil }; return s.writeLog }) { try guest.stopWriteLog(reader) }
            } catch {
                summary.notes.append("the page-write log could not be turned off: \(error)")
            }
            return summary
        }
    }
}

extension ArmingSummary {
    /// Adds what restoring the kernel tracker's patches did.
    public mutating func add(_ kernel: KernelRestoreSummary) {
        bytesRestored += kernel.bytesRestored
        bytesChangedByGuest += kernel.bytesChangedByGuest
        pagesCompared += kernel.pagesCompared
        pagesIdentical += kernel.pagesIdentical
        returnAddressesRestored += kernel.returnAddressesRestored
        notes += kernel.notes
    }
}
