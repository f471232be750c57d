import AllocationLedger
import Reachability

/// Makes the kernel section of a report from the kernel ledger and the latest scan's verdicts.
/// Pure: frames come from `frame`, which names a kernel address (symbolized while the guest
/// was paused, or from the kernel's symbol table).
public struct KernelReportBuilder: Sendable {
    /// The latest scan: its verdicts by object address and allocation time, and its figures.
    public struct LatestScan: Sendable {
        public var verdicts: [KernelObjectVerdict]
        public var report: KernelScanReport
        public init(verdicts: [KernelObjectVerdict], report: KernelScanReport) {
            self.verdicts = verdicts
            self.report = report
        }
    }

    /// Names a kernel address; `returnAddress`: look it up at the call before it.
    public var frame: @Sendable (_ pc: UInt64, _ returnAddress: Bool) -> ReportFrame

    public init(frame: @escaping @Sendable (_ pc: UInt64, _ returnAddress: Bool) -> ReportFrame) {
        self.frame = frame
    }

    public func build(ledger: KernelLedgerSnapshot, latest: LatestScan?, seconds: Double) -> KernelReport {
        let c = ledger.counters
        var verdicts: [UInt64: KernelObjectVerdict] = [:]
        for v in latest?.verdicts ?? [] { verdicts[v.object.address] = v }
        var classes = ClassTotals()
        var held = BlockTotal()
        struct Key: Hashable { let allocator: KernelAllocator; let cache: UInt32?; let site: UInt64; let stack: UInt32; let direct: Bool }
        var groups: [Key: [(KernelObject, KernelObjectVerdict)]] = [:]
        var outstanding: UInt64 = 0
        struct SiteKey: Hashable { let allocator: KernelAllocator; let cache: UInt32?; let site: UInt64 }
        var sites: [SiteKey: (objects: Int, bytes: UInt64, classes: ClassTotals, held: BlockTotal)] = [:]
        for object in ledger.objects {
            outstanding = outstanding.addingSaturated(object.allocatedSize)
            let one = BlockTotal(blocks: 1, bytes: object.allocatedSize)
            let siteKey = SiteKey(allocator: object.allocator, cache: object.cache, site: object.callSite)
            var site = sites[siteKey] ?? (0, 0, ClassTotals(), BlockTotal())
            site.objects += 1
            site.bytes = site.bytes.addingSaturated(object.allocatedSize)
            defer { sites[siteKey] = site }
            // A verdict about an earlier object at this address does not apply.
            guard let v = verdicts[object.address], v.object.allocatedAt.bitPattern == (Double(object.time) / 1e9).bitPattern,
                  let reachability = v.reachability else {
                classes.notScanned = classes.notScanned + one
                site.classes.notScanned = site.classes.notScanned + one
                continue
            }
            switch reachability {
            case .directLeak, .indirectLeak:
                if v.reported {
                    classes[reachability] = classes[reachability] + one
                    site.classes[reachability] = site.classes[reachability] + one
                    let key = Key(allocator: object.allocator, cache: object.cache, site: object.callSite, stack: object.stack,
                                  direct: reachability == .directLeak)
                    groups[key, default: []].append((object, v))
                } else {
                    held = held + one
                    site.held = site.held + one
                }
            case .reachable, .possiblyLost:
                classes.stillReachable = classes.stillReachable + one
                site.classes.stillReachable = site.classes.stillReachable + one
            }
        }
        let topSites = sites.sorted { ($0.value.bytes, $0.value.objects, $1.key.site) > ($1.value.bytes, $1.value.objects, $0.key.site) }
            .prefix(20).map { key, value in
                KernelSiteSummary(allocator: key.allocator, cache: ledger.cacheName(key.cache), callSite: frame(key.site, true),
                                  objects: value.objects, bytes: value.bytes, classes: value.classes, held: value.held)
            }
        let made = groups.map { key, members in group(key.allocator, cache: ledger.cacheName(key.cache), site: key.site,
                                                      stack: ledger.stack(key.stack), members: members) }
            .sorted { ($0.bytes.addingSaturated($0.indirectBytes), $0.objects, $1.callSite.pc) > ($1.bytes.addingSaturated($1.indirectBytes), $1.objects, $0.callSite.pc) }
        let findings = ledger.findings.map { f in
            KernelFindingReport(kind: f.kind.rawValue, address: f.address, freedBy: f.freedBy?.rawValue, allocatedBy: f.allocatedBy?.rawValue,
                                callSite: frame(f.callSite, true), seconds: Double(f.time) / 1e9)
        }
        var notes: [String] = []
        do {
            notes.append("objects allocated before tracking started are not in the ledger: they are neither scanned as objects nor"
                         + " reported (their memory is a root); \(c.freedAllocatedBeforeTracking) of them were freed since")
        }
        if latest == nil { notes.append("no kernel scan ran (give --scan-every, or ask with leakvisor report)") }
        return KernelReport(allocations: c.totalAllocations, frees: c.totalFrees, outstandingObjects: ledger.objects.count,
                            outstandingBytes: outstanding, freesOfObjectsFromBeforeTracking: c.freedAllocatedBeforeTracking,
                            classes: classes, held: held, groups: made, outstandingSites: Array(topSites), findings: findings,
                            scan: latest?.report, notes: notes)
    }

    func group(_ allocator: KernelAllocator, cache: String?, site: UInt64, stack: [UInt64],
               members: [(KernelObject, KernelObjectVerdict)]) -> KernelObjectGroup {
        let byAge = members.sorted { ($0.0.time, $0.0.address) < ($1.0.time, $1.0.address) }
        let first = byAge[0].1
        return KernelObjectGroup(
            allocator: allocator, cache: cache, objects: members.count,
            bytes: UInt64.saturatedSum(members.map(\.0.allocatedSize)), requestedBytes: UInt64.saturatedSum(members.map(\.0.requestedSize)),
            sizes: Array(members.map(\.0.allocatedSize).sorted(by: >).prefix(16)),
            oldestSeconds: Double(byAge[0].0.time) / 1e9, newestSeconds: Double(byAge[byAge.count - 1].0.time) / 1e9,
            callSite: frame(site, true), frames: stack.map { frame($0, true) }, reachability: first.reachability ?? .directLeak,
            indirectBytes: UInt64.saturatedSum(members.map(\.1.indirectBytes)),
            details: byAge.prefix(BlockDetail.limit).map { o, v in
                KernelObjectDetail(address: o.address, size: o.allocatedSize, requestedSize: o.requestedSize,
                                   allocatedSeconds: Double(o.time) / 1e9, cpu: o.cpu, task: o.task, unreferencedScans: v.unreferencedScans)
            })
    }
}
