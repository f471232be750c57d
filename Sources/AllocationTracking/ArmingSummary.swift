/// What arming or disarming did.
public struct ArmingSummary: Sendable, Codable, Equatable {
    public init() {}
    public var kernelHooks = 0
    public var sites = 0
    public var files: [String] = []
    /// Bytes written back by `disarm` and the return addresses put back on stacks.
    public var bytesRestored = 0
    public var returnAddressesRestored = 0
    /// Bytes that no longer held what the monitor wrote (the guest changed them): left alone.
    public var bytesChangedByGuest = 0
}
