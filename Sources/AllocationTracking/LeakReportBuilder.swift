import Introspection

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
            struct Key: Hashable { let function: AllocatorFunction; let stack: UInt32 }
            var grouped: [Key: [LiveBlock]] = [:]
            for block in space.blocks.values { grouped[Key(function: block.function, stack: block.stack), default: []].append(block) }
            var groups = grouped.map { key, blocks in
                let sizes = blocks.map(\.size).sorted(by: >)
                return AllocationGroup(function: key.function, blocks: blocks.count, bytes: sizes.reduce(0, +),
                                       sizes: Array(sizes.prefix(16)),
                                       oldestSeconds: Double(blocks.map(\.time).min() ?? 0) / 1e9,
                                       newestSeconds: Double(blocks.map(\.time).max() ?? 0) / 1e9,
                                       threads: Array(Set(blocks.map(\.thread))).sorted(), frames: frames(key.stack))
            }
            groups.sort { ($0.bytes, $0.blocks, $1.oldestSeconds) > ($1.bytes, $1.blocks, $0.oldestSeconds) }
            let executable = space.identity?.executable
            let findings = space.findings.filter { finding in
                guard finding.kind != .mismatchedRelease, Int(finding.stack) < snapshot.stacks.count,
                      snapshot.stacks[Int(finding.stack)].count > 1 else { return true }
                let entry = symbolizer.frame(snapshot.stacks[Int(finding.stack)][0], isReturnAddress: false)
                let caller = symbolizer.frame(snapshot.stacks[Int(finding.stack)][1], isReturnAddress: true)
                // The allocator library releasing on its own behalf (its stripped copy names no
                // function): not the program's doing.
                if let module = caller.module, module == entry.module, module != executable { return false }
                return !internalReleasers.contains(caller.function ?? "")
            }.map {
                FindingReport(kind: $0.kind, address: $0.address, releasedBy: $0.releasedBy, allocatedBy: $0.allocatedBy,
                              thread: $0.thread, seconds: Double($0.time) / 1e9, frames: frames($0.stack))
            }
            processes.append(ProcessReport(pid: space.identity?.pid, command: space.identity?.command,
                                           executable: space.identity?.executable, state: space.end,
                                           outstandingBlocks: space.blocks.count,
                                           outstandingBytes: space.blocks.values.reduce(0) { $0 + $1.size },
                                           allocations: space.counters.allocations, releases: space.counters.releases,
                                           bytesAllocated: space.counters.bytesAllocated,
                                           peakLiveBytes: space.counters.peakLiveBytes, groups: groups, findings: findings))
        }
        let summary = LeakReport.Summary(outstandingBlocks: processes.reduce(0) { $0 + $1.outstandingBlocks },
                                         outstandingBytes: processes.reduce(0) { $0 + $1.outstandingBytes },
                                         allocationSites: processes.reduce(0) { $0 + $1.groups.count },
                                         processes: processes.count,
                                         findings: processes.reduce(0) { $0 + $1.findings.count })
        return LeakReport(seconds: seconds, processes: processes, summary: summary)
    }
}
