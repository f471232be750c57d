/// Trap and event counts, for the closing line and the benchmark.
public struct TrackerCounters: Sendable, Codable {
    public init() {}
    public var entries = 0
    public var nestedEntries = 0
    public var returns = 0
    public var releases = 0
    public var unreadableCalls = 0
    /// Faults delivered to the guest in place of a displaced instruction's access it could not make.
    public var faultsDelivered = 0
    /// Faults at the return trampoline not taken as a return (passed to the guest).
    public var trampolineFaultsDeclined = 0
    public var mmapHooks = 0
    public var exitHooks = 0
    public var sitesArmed = 0
}
