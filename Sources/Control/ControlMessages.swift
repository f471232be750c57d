import AllocationTracing
import AllocationLedger
import Introspection
import LeakAnalysis

/// A question `leakvisor inspect` asks a running monitor. One per connection, JSON on one line.
public enum ControlRequest: Codable, Sendable, Equatable {
    case processes
    case mappings(pid: Int32)
    case stacks(pid: Int32)
    /// A guest address: kernel addresses resolve through the kernel's symbols; user addresses
    /// need the process they belong to.
    case symbol(address: UInt64, pid: Int32?)
    /// The allocation report now (needs `run --track`).
    case report(allProcesses: Bool)
    /// Stop tracking and put back every guest byte the monitor changed.
    case detach
    /// Start tracking user allocations in a guest that runs untracked (or detached): `track` is
    /// "user" or "user-malloc"; `reportPath` (absolute) receives the final report as JSON.
    case attach(track: String, reportPath: String?)
    /// The guest kernel's reachability roots, with a probe scan (`inspect kernel-roots`).
    case kernelRoots
    /// Save the running guest into a snapshot file at `path` (absolute, on the monitor's host).
    case snapshot(path: String)
    /// The guest kernel's loaded modules.
    case modules
    /// Every word of the kernel's roots and tracked objects that points into the object at (or
    /// the byte at) `address` (`inspect kernel-refs`).
    case kernelReferrers(address: UInt64)
}

/// A snapshot the monitor saved on request.
public struct SnapshotSaved: Codable, Sendable, Equatable {
    public var path: String
    public var bytesOnDisk: UInt64
    public var ramPagesWritten: Int
    public var pausedSeconds: Double

    public init(path: String, bytesOnDisk: UInt64, ramPagesWritten: Int, pausedSeconds: Double) {
        self.path = path
        self.bytesOnDisk = bytesOnDisk
        self.ramPagesWritten = ramPagesWritten
        self.pausedSeconds = pausedSeconds
    }
}

/// The monitor's answer: exactly one of the payloads, or an error message.
public struct ControlResponse: Codable, Sendable {
    public var error: String?
    public var processes: [GuestProcess]?
    public var mappings: [GuestMapping]?
    public var stacks: [GuestThreadStack]?
    public var symbol: GuestStackFrame?
    public var report: LeakReport?
    public var detached: ArmingSummary?
    public var snapshot: SnapshotSaved?
    public var attached: AttachSummary?
    public var modules: [LoadedKernelModule]?
    public var kernelRoots: KernelRootsSummary?
    public var kernelReferrers: KernelReferrerSearch?

    public init(error: String? = nil, processes: [GuestProcess]? = nil, mappings: [GuestMapping]? = nil,
                stacks: [GuestThreadStack]? = nil, symbol: GuestStackFrame? = nil, report: LeakReport? = nil,
                detached: ArmingSummary? = nil, snapshot: SnapshotSaved? = nil, attached: AttachSummary? = nil) {
        self.error = error; self.processes = processes; self.mappings = mappings
        self.stacks = stacks; self.symbol = symbol; self.report = report; self.detached = detached
        self.snapshot = snapshot; self.attached = attached
    }

    public init(kernelRoots: KernelRootsSummary) {
        self.kernelRoots = kernelRoots
    }
}
