import AllocationTracing
import Control
import Foundation
import GuestInterface

extension TrackingSession {
    /// Why `attach` did not arm.
    public enum AttachError: Error, CustomStringConvertible {
        case alreadyTracking
        case guestCannotTakeHandler
        public var description: String {
            switch self {
            case .alreadyTracking: return "this monitor is tracking allocations already (leakvisor detach first)"
            case .guestCannotTakeHandler: return "this guest's trap handler cannot be installed while it runs"
            }
        }
    }

    /// `leakvisor attach`: with the guest paused, arms the tracker (kernel hooks, the allocators of
    /// every file mapped now; every process existing now is marked as predating tracking), puts the
    /// blocks glibc had handed out into the ledger as allocated before attach, and installs the
    /// tracker as the guest's trap handler; then starts the scans. Also re-arms after `detach`.
    public func attach(kernelSeconds: Double = 0, reattached: Bool) throws -> AttachSummary {
        guard let host = guest as? any TrapHandlerHost else { throw AttachError.guestCannotTakeHandler }
        return try scanning.withLock { _ in
            if case .success? = tracker.armingOutcome { throw AttachError.alreadyTracking }
            let started = ContinuousClock.now
            let tracker = self.tracker
            let (arming, preexisting) = try guest.withGuestPaused(timeout: 10) { paused in
                let arming = try tracker.attach(paused)
                let preexisting = tracker.importPreexistingBlocks(paused)
                host.installTrapHandler(tracker)
                return (arming, preexisting)
            }
            let pausedSeconds = (ContinuousClock.now - started) / .seconds(1)
            startScanning()
            return AttachSummary(arming: arming, preexisting: preexisting, reattached: reattached, kernelSeconds: kernelSeconds,
                                 pausedSeconds: pausedSeconds)
        }
    }
}
