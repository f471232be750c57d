import AllocationLedger
import AllocationTracing

/// The kernel section of the closing text: objects allocated, freed and outstanding, findings,
/// traps per event, and the call sites with the most outstanding objects.
public struct KernelLedgerSummary: Sendable {
    public let ledger: KernelLedgerSnapshot
    public let counters: KernelTrackerCounters
    /// Names a run-time kernel address (`symbol+0xoff`).
    public let describe: @Sendable (UInt64) -> String
    /// How many call sites to list.
    public var topSites = 10

    public init(ledger: KernelLedgerSnapshot, counters: KernelTrackerCounters, describe: @escaping @Sendable (UInt64) -> String) {
        self.ledger = ledger
        self.counters = counters
        self.describe = describe
    }

    /// Outstanding objects grouped by call site and allocator, most first (ties: more bytes, then address).
    public func outstandingSites() -> [(callSite: UInt64, allocator: KernelAllocator, cache: String?, objects: Int, bytes: UInt64)] {
        struct Key: Hashable { let site: UInt64; let allocator: KernelAllocator; let cache: UInt32? }
        var groups: [Key: (objects: Int, bytes: UInt64)] = [:]
        for object in ledger.objects {
            let key = Key(site: object.callSite, allocator: object.allocator, cache: object.cache)
            let old = groups[key] ?? (0, 0)
            groups[key] = (old.objects + 1, old.bytes.addingReportingOverflow(object.allocatedSize).partialValue)
        }
        return groups.map { ($0.key.site, $0.key.allocator, ledger.cacheName($0.key.cache), $0.value.objects, $0.value.bytes) }
            .sorted { ($0.objects, $0.bytes, $1.callSite) > ($1.objects, $1.bytes, $0.callSite) }
    }

    public var text: String {
        let c = ledger.counters
        var lines: [String] = []
        let outstandingBytes = ledger.objects.reduce(UInt64(0)) { $0.addingReportingOverflow($1.allocatedSize).partialValue }
        lines.append("kernel allocations: \(c.totalAllocations) object(s) allocated ("
                     + KernelAllocator.allCases.map { "\($0.rawValue) \(c.allocations[$0] ?? 0)" }.joined(separator: ", ")
                     + "), \(c.totalFrees) freed, \(ledger.objects.count) outstanding (\(outstandingBytes) bytes)")
        lines.append("  frees of objects allocated before tracking: \(c.freedAllocatedBeforeTracking); null frees: \(c.nullFrees)"
                     + "; allocations over a live object (its free unseen): \(c.replacedWhileLive)")
        let traps = counters.totalTraps, events = counters.totalEvents
        let ratio = events > 0 ? Double(traps) / Double(events) : 0
        lines.append("  traps: \(traps) for \(events) event(s) (\(Self.format(ratio)) per event): "
                     + counters.traps.keys.sorted().map { "\($0) \(counters.traps[$0] ?? 0)/\(counters.events[$0] ?? 0)" }.joined(separator: ", "))
        var unread: [String] = []
        if counters.unreadableCaches > 0 { unread.append("\(counters.unreadableCaches) cache(s) unreadable") }
        if counters.unreadableStacks > 0 { unread.append("\(counters.unreadableStacks) stack(s) unreadable") }
        if counters.unreadableReturns > 0 { unread.append("\(counters.unreadableReturns) iterator return(s) unreadable") }
        if counters.unreadableBulkFrees > 0 { unread.append("\(counters.unreadableBulkFrees) bulk free(s) unreadable") }
        if counters.failedAllocations > 0 { unread.append("\(counters.failedAllocations) failed allocation(s)") }
        if !unread.isEmpty { lines.append("  " + unread.joined(separator: ", ")) }
        lines.append("  findings: \(ledger.findings.count)")
        for finding in ledger.findings.prefix(20) {
            lines.append("    \(finding.kind.rawValue) of 0x\(String(finding.address, radix: 16)) by "
                         + "\(finding.freedBy?.rawValue ?? finding.allocatedBy?.rawValue ?? "?") at \(describe(finding.callSite))")
        }
        let sites = outstandingSites()
        if !sites.isEmpty {
            lines.append("  top outstanding call sites:")
            for site in sites.prefix(topSites) {
                let cache = site.cache.map { " [\($0)]" } ?? ""
                lines.append("    \(site.objects) object(s), \(site.bytes) bytes: \(site.allocator.rawValue)\(cache) from \(describe(site.callSite))")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func format(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
    }
}
