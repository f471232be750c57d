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
    /// Allocator stacks walked, the frames found past the exact two (through CFI rules or frame
    /// pointers), and the host time the walks took, guest reads included.
    public var stackWalks = 0
    public var stackFramesByCFI = 0
    public var stackFramesByFramePointer = 0
    public var stackWalkNanoseconds: UInt64 = 0
    /// CFI tables built (one per host file) and the time that took.
    public var unwindTablesBuilt = 0
    public var unwindTableNanoseconds: UInt64 = 0

    /// Releases recorded through a process's event ring, without a trap (`--exitless`), and ring
    /// records that were part of another call (a forwarded release).
    public var ringReleases = 0
    public var ringNestedEntries = 0
    /// Allocation calls whose entry and result came through a ring (their stacks walked from the
    /// entry record's copy of the stack).
    public var ringAllocations = 0
    /// Ring records not taken: malformed (no known stub), or an entry past the calls in flight
    /// the tracker keeps (`CallTracker.maximumCallsInFlight`).
    public var ringRecordsDropped = 0
    /// Traps the exitless path still takes: a window or the code page mapped on first use, a
    /// full ring drained, a call recorded the trapped way because its window could not be mapped.
    public var exitlessTraps = 0
    /// Allocator entry points whose `int3` is an exitless jump instead.
    public var exitlessSites = 0

    /// Every trap at an allocator entry or return: entries, returns, releases, nested or forwarded
    /// calls, and the exitless path's own traps.
    public var trappedEvents: Int { entries + returns + releases + nestedEntries + exitlessTraps }

    /// Reads a record written by any version: a count it does not hold is zero.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func count(_ key: CodingKeys) throws -> Int { try c.decodeIfPresent(Int.self, forKey: key) ?? 0 }
        func nanoseconds(_ key: CodingKeys) throws -> UInt64 { try c.decodeIfPresent(UInt64.self, forKey: key) ?? 0 }
        entries = try count(.entries)
        nestedEntries = try count(.nestedEntries)
        returns = try count(.returns)
        releases = try count(.releases)
        unreadableCalls = try count(.unreadableCalls)
        faultsDelivered = try count(.faultsDelivered)
        trampolineFaultsDeclined = try count(.trampolineFaultsDeclined)
        mmapHooks = try count(.mmapHooks)
        exitHooks = try count(.exitHooks)
        sitesArmed = try count(.sitesArmed)
        stackWalks = try count(.stackWalks)
        stackFramesByCFI = try count(.stackFramesByCFI)
        stackFramesByFramePointer = try count(.stackFramesByFramePointer)
        stackWalkNanoseconds = try nanoseconds(.stackWalkNanoseconds)
        unwindTablesBuilt = try count(.unwindTablesBuilt)
        unwindTableNanoseconds = try nanoseconds(.unwindTableNanoseconds)
        ringReleases = try count(.ringReleases)
        ringNestedEntries = try count(.ringNestedEntries)
        ringAllocations = try count(.ringAllocations)
        ringRecordsDropped = try count(.ringRecordsDropped)
        exitlessTraps = try count(.exitlessTraps)
        exitlessSites = try count(.exitlessSites)
    }
}
