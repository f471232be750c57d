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
    /// Pages written into, compared after restoring with their content before the first write.
    public var pagesCompared = 0
    public var pagesIdentical = 0
    /// What `disarm` left alone and why (a breakpoint whose page is no longer the file's).
    public var notes: [String] = []
}
