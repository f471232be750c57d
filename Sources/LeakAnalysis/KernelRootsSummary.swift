import Foundation
import Introspection
import Reachability

/// What `leakvisor inspect kernel-roots` shows: the guest kernel's roots at one pause (bytes and
/// ranges by kind, the page census, how long enumeration took) and probe scans of object lists
/// taken from real guest memory, whose classes are known in advance.
public struct KernelRootsSummary: Codable, Sendable, Equatable {
    /// Root bytes and ranges by `KernelRootRange.Kind` raw value, as enumerated (before objects
    /// are taken out of the conservative kinds).
    public var bytes: [String: UInt64] = [:]
    public var ranges: [String: Int] = [:]
    public var perCPUUnits = 0
    /// Tasks whose kernel stack is a root; tasks on the task list.
    public var stacks = 0
    public var tasks = 0
    public var vmallocAreas = 0
    public var vmallocAreasSkipped = 0
    public var registerWords = 0
    public var threadSize: UInt64 = 0
    public var census = KernelPageCensus()
    public var guestRAMBytes: UInt64 = 0
    /// Seconds the root enumeration took.
    public var seconds = 0.0
    public var problems: [String] = []
    /// Free SLUB slots taken out of the slab roots, and free lists that ended early.
    public var freeSlabSlots = 0
    public var freeSlabBytes: UInt64 = 0
    public var brokenFreeLists = 0
    public var probes: [Probe] = []
    /// The probe scan: seconds, root bytes after the probe objects were taken out, bytes read.
    public var probeSeconds = 0.0
    public var probeRootBytes: UInt64 = 0
    public var probeBytesScanned: UInt64 = 0
    public var probeComplete = false

    /// One group of probe objects and the classes the scan gave them.
    public struct Probe: Codable, Sendable, Equatable {
        public var name: String
        public var objects = 0, reachable = 0, direct = 0, indirect = 0, unclassified = 0
    }

    public init() {}

    /// Enumerates the roots and runs one probe scan over: every task's `task_struct` (slab
    /// objects on the task list: reachable), every task's kernel stack (vmalloc objects that
    /// `task->stack` points to: reachable), and 64-byte objects in the middle of free pages
    /// (memory nothing points into: leaks).
    public static func measure(view: KernelView) -> KernelRootsSummary {
        var s = KernelRootsSummary()
        let started = DispatchTime.now().uptimeNanoseconds
        let roots = view.kernelRoots()
        s.seconds = Double(DispatchTime.now().uptimeNanoseconds &- started) / 1e9
        for r in roots.ranges {
            s.bytes[r.kind.rawValue] = s.bytes[r.kind.rawValue, default: 0].addingSaturated(r.range.length)
            s.ranges[r.kind.rawValue, default: 0] += 1
        }
        (s.perCPUUnits, s.stacks, s.vmallocAreas, s.vmallocAreasSkipped) = (roots.perCPUUnits, roots.stacks, roots.vmallocAreas, roots.vmallocAreasSkipped)
        s.registerWords = roots.registerWords.count
        s.census = roots.pageCensus
        s.threadSize = view.threadSize()
        s.guestRAMBytes = view.memory.totalSize
        s.problems = roots.problems + roots.problemsNotes
        s.freeSlabSlots = roots.freeSlabSlots.count
        s.freeSlabBytes = UInt64.saturatedSum(roots.freeSlabSlots.map { $0.upperBound - $0.lowerBound })
        s.brokenFreeLists = roots.brokenFreeLists

        let tasks = (try? view.tasks()) ?? []
        s.tasks = tasks.count
        let taskSize = UInt64((try? view.kernel.layout.roots.get().taskStructSize) ?? 0)
        var groups: [(String, [KernelScanObject])] = [
            ("task_struct", tasks.map { KernelScanObject(address: $0.address, size: taskSize, allocatedAt: 0) }),
            ("kernel stack", tasks.filter { $0.stack != 0 && $0.pid != 0 }
                .map { KernelScanObject(address: $0.stack, size: s.threadSize, allocatedAt: 0) }),
        ]
        if let base = try? view.directMapBase() {
            groups.append(("free page", roots.freeFrameSample.map {
                KernelScanObject(address: base &+ ($0 << 12) &+ 0x800, size: 64, allocatedAt: 0)
            }))
        }
        var scanner = KernelLeakScanner(rules: KernelLeakRules(minimumAge: 0, consecutiveScans: 1))
        var source = KernelMemorySource(space: view.space, directMapBase: try? view.directMapBase())
        let probeStarted = DispatchTime.now().uptimeNanoseconds
        let result = scanner.scan(objects: groups.flatMap(\.1), roots: roots, memory: &source, now: 1, writtenFrames: nil)
        s.probeSeconds = Double(DispatchTime.now().uptimeNanoseconds &- probeStarted) / 1e9
        s.probeRootBytes = result.statistics.totalRootBytes
        s.probeBytesScanned = source.bytesScanned
        s.probeComplete = result.complete
        s.problems += result.problems.filter { !s.problems.contains($0) }
        var byAddress: [UInt64: KernelObjectVerdict] = [:]
        for v in result.verdicts { byAddress[v.object.address] = v }
        for (name, objects) in groups {
            var p = Probe(name: name)
            for o in objects {
                p.objects += 1
                switch byAddress[o.address]?.reachability {
                case .reachable?, .possiblyLost?: p.reachable += 1
                case .directLeak?: p.direct += 1
                case .indirectLeak?: p.indirect += 1
                case nil: p.unclassified += 1
                }
            }
            s.probes.append(p)
        }
        return s
    }
}
