import AllocationTracing

/// What `leakvisor attach` did: the breakpoints and hooks armed, the blocks found from before the
/// attach, and what it cost.
public struct AttachSummary: Codable, Sendable, Equatable {
    public var arming: ArmingSummary
    public var preexisting: PreexistingHeapSummary
    /// Whether this attach re-armed a session that existed (after detach) rather than making one.
    public var reattached: Bool
    /// Seconds to read the guest kernel's symbols and BTF (0 when the session existed).
    public var kernelSeconds: Double
    /// Seconds the guest was paused to arm and walk the heaps.
    public var pausedSeconds: Double

    public init(arming: ArmingSummary, preexisting: PreexistingHeapSummary, reattached: Bool, kernelSeconds: Double,
                pausedSeconds: Double) {
        self.arming = arming
        self.preexisting = preexisting
        self.reattached = reattached
        self.kernelSeconds = kernelSeconds
        self.pausedSeconds = pausedSeconds
    }
}
