import AllocationLedger
import GuestInterface
import Introspection
import Reachability

/// Turns a ledger snapshot into a `LeakReport`: groups each process's outstanding blocks by
/// (allocating function, stack), largest total first, and symbolizes the stacks.
public struct LeakReportBuilder: Sendable {
    public var files: GuestSymbolFiles
    /// Processes to leave out (by command name), e.g. the guest's own init and shell.
    public var excludedCommands: Set<String> = []
    /// glibc functions that release memory the program never got from a public allocator (the
    /// thread's tcache at thread exit): their frees of unknown addresses are not findings.
    public var internalReleasers: Set<String> = ["tcache_thread_shutdown", "__malloc_arena_thread_freeres",
                                                 "__libc_thread_freeres", "__libc_freeres", "arena_thread_freeres"]

    /// Seconds without a write after which a referenced block counts as stale.
    public var staleAfterSeconds: Double = 60

    public init(files: GuestSymbolFiles) {
        self.files = files
    }

    public func build(_ snapshot: LedgerSnapshot, seconds: Double) -> LeakReport {
        var processes: [ProcessReport] = []
        for space in snapshot.spaces {
            if let command = space.identity?.command, excludedCommands.contains(command) { continue }
            guard !space.blocks.isEmpty || !space.findings.isEmpty else { continue }
            let symbolizer = FrameSymbolizer(modules: space.modules, files: files)
            func frames(_ stack: UInt32) -> [ReportFrame] {
                let pcs = Int(stack) < snapshot.stacks.count ? snapshot.stacks[Int(stack)] : []
                return pcs.enumerated().map { symbolizer.frame($1, isReturnAddress: $0 > 0) }
            }
            let scan = space.lastScan
            struct Key: Hashable { let function: AllocatorFunction; let stack: UInt32; let reachability: ReachabilityClass? }
            var grouped: [Key: [(UInt64, LiveBlock)]] = [:]
            var classes = ClassTotals()
            for (address, block) in space.blocks {
                let verdict = scan?.verdict(of: address, block)
                let reachability = verdict?.reachability
                grouped[Key(function: block.function, stack: block.stack, reachability: reachability), default: []].append((address, block))
                classes[reachability] = classes[reachability] + BlockTotal(blocks: 1, bytes: block.size)
                if let via = verdict?.viaHeuristic { classes.addReachable(via: via, bytes: block.size) }
            }
            let staleAfter = ScanLimits.nanoseconds(staleAfterSeconds)
            var groups = grouped.map { key, members in
                let blocks = members.map(\.1)
                let sizes = blocks.map(\.size).sorted(by: >)
                let verdicts = members.compactMap { scan?.verdict(of: $0.0, $0.1) }
                return AllocationGroup(function: key.function, blocks: blocks.count, bytes: UInt64.saturatedSum(sizes),
                                       sizes: Array(sizes.prefix(16)),
                                       oldestSeconds: Double(blocks.map(\.time).min() ?? 0) / 1e9,
                                       newestSeconds: Double(blocks.map(\.time).max() ?? 0) / 1e9,
                                       threads: Array(Set(blocks.map(\.thread))).sorted(), frames: frames(key.stack),
                                       reachability: key.reachability,
                                       indirectBytes: UInt64.saturatedSum(verdicts.map(\.indirectBytes)),
                                       lastWrittenSeconds: verdicts.map(\.lastWritten).max().map { Double($0) / 1e9 },
                                       staleBlocks: scan.map { scan in verdicts.filter { scan.time &- $0.lastWritten >= staleAfter }.count },
                                       details: key.reachability?.isLeak == true ? Self.details(members, scan) : [])
            }
            groups.sort { a, b in
                let ca = a.reachability.map { ReachabilityClass.allCases.firstIndex(of: $0)! } ?? 4
                let cb = b.reachability.map { ReachabilityClass.allCases.firstIndex(of: $0)! } ?? 4
                if ca != cb { return ca < cb }
                return (a.bytes.addingSaturated(a.indirectBytes), a.blocks, b.oldestSeconds)
                    > (b.bytes.addingSaturated(b.indirectBytes), b.blocks, a.oldestSeconds)
            }
            let scanReport = scan.map { ScanReport(seconds: Double($0.time) / 1e9, figures: $0.figures, classes: classes, notes: $0.notes,
                                                   complete: $0.complete) }
            let growth = Self.growth(space.siteHistory, blocks: space.blocks, frames: frames)
            let executable = space.identity?.executable
            let findings = space.findings.filter { finding in
                guard finding.kind != .mismatchedRelease, finding.kind != .implausibleBlock, Int(finding.stack) < snapshot.stacks.count,
                      snapshot.stacks[Int(finding.stack)].count > 1 else { return true }
                let entry = symbolizer.frame(snapshot.stacks[Int(finding.stack)][0], isReturnAddress: false)
                let caller = symbolizer.frame(snapshot.stacks[Int(finding.stack)][1], isReturnAddress: true)
                // The allocator library releasing on its own behalf (its stripped copy names no
                // function): not the program's doing.
                if let module = caller.module, module == entry.module, module != executable { return false }
                return !internalReleasers.contains(caller.function ?? "")
            }.map {
                FindingReport(kind: $0.kind, address: $0.address, releasedBy: $0.releasedBy, allocatedBy: $0.allocatedBy,
                              thread: $0.thread, seconds: Double($0.time) / 1e9, frames: frames($0.stack), size: $0.size)
            }
            processes.append(ProcessReport(pid: space.identity?.pid, command: space.identity?.command,
                                           executable: space.identity?.executable, state: space.end,
                                           outstandingBlocks: space.blocks.count,
                                           outstandingBytes: UInt64.saturatedSum(space.blocks.values.lazy.map(\.size)),
                                           allocations: space.counters.allocations, releases: space.counters.releases,
                                           bytesAllocated: space.counters.bytesAllocated,
                                           peakLiveBytes: space.counters.peakLiveBytes, groups: groups, findings: findings,
                                           scan: scanReport, growth: growth, refusedBlocks: space.counters.refusedBlocks))
        }
        var summaryClasses = processes.reduce(ClassTotals()) { total, process in
            process.groups.reduce(total) { t, g in
                var t = t
                t[g.reachability] = t[g.reachability] + BlockTotal(blocks: g.blocks, bytes: g.bytes)
                return t
            }
        }
        for process in processes {
            for (name, total) in process.scan?.classes.reachableViaHeuristic ?? [:] {
                summaryClasses.reachableViaHeuristic = (summaryClasses.reachableViaHeuristic ?? [:]).merging([name: total]) { $0 + $1 }
            }
        }
        let summary = LeakReport.Summary(outstandingBlocks: processes.reduce(0) { $0 + $1.outstandingBlocks },
                                         outstandingBytes: UInt64.saturatedSum(processes.map(\.outstandingBytes)),
                                         allocationSites: processes.reduce(0) { $0 + $1.groups.count },
                                         processes: processes.count,
                                         findings: processes.reduce(0) { $0 + $1.findings.count },
                                         classes: summaryClasses)
        var report = LeakReport(seconds: seconds, processes: processes, summary: summary)
        report.notes = Self.notes(report)
        return report
    }

    /// The blocks of a leak group, oldest first, at most `BlockDetail.limit`.
    static func details(_ members: [(UInt64, LiveBlock)], _ scan: SpaceScan?) -> [BlockDetail] {
        members.sorted { ($0.1.time, $0.0) < ($1.1.time, $1.0) }.prefix(BlockDetail.limit).map { address, block in
            BlockDetail(address: address, size: block.size, allocatedSeconds: Double(block.time) / 1e9,
                        lastWrittenSeconds: scan?.verdict(of: address, block).map { Double($0.lastWritten) / 1e9 })
        }
    }

    /// Sites whose referenced bytes grew over at least `minimumScans` scans (never shrinking) and
    /// whose blocks are mostly stale at the latest one.
    static func growth(_ history: [UInt32: [SiteSample]], blocks: [UInt64: LiveBlock],
                       frames: (UInt32) -> [ReportFrame], minimumScans: Int = 3) -> [SiteGrowth] {
        var functions: [UInt32: AllocatorFunction] = [:]
        for block in blocks.values { functions[block.stack] = block.function }
        var result: [SiteGrowth] = []
        for (stack, samples) in history {
            // The run of non-shrinking samples that ends at the latest one.
            guard !samples.isEmpty else { continue }
            var start = samples.count - 1
            while start > 0, samples[start - 1].bytes <= samples[start].bytes, samples[start - 1].bytes > 0 { start -= 1 }
            let run = samples[start...]
            guard run.count >= minimumScans, let first = run.first, let last = run.last, last.bytes > first.bytes,
                  last.staleBlocks * 2 >= last.blocks else { continue }
            result.append(SiteGrowth(function: functions[stack] ?? .malloc, firstBlocks: first.blocks, lastBlocks: last.blocks,
                                     firstBytes: first.bytes, lastBytes: last.bytes, scans: run.count,
                                     seconds: Double(last.time &- first.time) / 1e9, staleBlocks: last.staleBlocks,
                                     frames: frames(stack)))
        }
        return result.sorted { ($0.lastBytes &- $0.firstBytes) > ($1.lastBytes &- $1.firstBytes) }
    }

    /// Caveats about the whole report: saturated byte totals, incomplete scans, refused blocks.
    static func notes(_ report: LeakReport) -> [String] {
        var notes: [String] = []
        let s = report.summary
        let totals = [s.outstandingBytes] + [s.classes.definitelyLost, s.classes.indirectlyLost, s.classes.possiblyLost,
                                             s.classes.stillReachable, s.classes.notScanned].map(\.bytes)
            + report.processes.flatMap { p in [p.outstandingBytes, p.bytesAllocated, p.peakLiveBytes] + p.groups.map(\.bytes) }
        if totals.contains(where: \.isSaturated) {
            notes.append("some byte totals reached 2^64 - 1 (18446744073709551615) and are lower bounds")
        }
        let incomplete = report.processes.filter { $0.scan?.complete == false }.count
        if incomplete > 0 {
            notes.append("\(incomplete) process(es) whose latest scan was incomplete: their blocks not proven reachable are not classified")
        }
        let refused = report.processes.reduce(0) { $0 &+ $1.refusedBlocks }
        if refused > 0 {
            notes.append("\(refused) implausible allocation result(s) refused (end past user space or wrapping)")
        }
        return notes
    }
}
