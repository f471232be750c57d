import GuestMemory

/// A guest the analysis room can inspect: one it can pause for a consistent view, read, and ask
/// which frames were written. Our own `Machine` is one; a backend for a VM run by another
/// hypervisor (a QEMU process) would be another. Nothing here names KVM.
public protocol InspectableGuest: AnyObject, Sendable {
    /// The guest's physical memory, readable while the guest runs (reads may then race with writes).
    var memory: GuestMemory { get }
    /// Stops every vCPU, runs `body` on the consistent guest they leave behind, and resumes them;
    /// fails if the vCPUs do not stop within `timeout` seconds.
    func withGuestPaused<T>(timeout: Double, _ body: (PausedGuest) throws -> T) throws -> T
    /// Starts logging which frames the guest writes (or joins the log already on) and returns a
    /// reader of it with intervals of its own (harvested by the caller).
    func startWriteLog() throws -> any GuestWriteTracking
    /// Leaves the log `reader` came from; the log stops when its last reader leaves.
    func stopWriteLog(_ reader: any GuestWriteTracking) throws
}
