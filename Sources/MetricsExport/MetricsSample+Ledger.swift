import AllocationLedger
import AllocationTracing
import LeakAnalysis
import Reachability

extension MetricsSample {
    /// The figures of a ledger snapshot without building a report (no grouping, no symbols):
    /// the processes a report would list (those of `excludedCommands` left out) with their
    /// outstanding blocks, and the blocks by the class their space's latest scan gave them,
    /// counted as `LeakReportBuilder` counts them.
    public init(ledger: LedgerSnapshot, excludedCommands: Set<String>, counters: TrackerCounters, journalSamples: Int?,
                trackingSeconds: Double) {
        var processes: [Process] = []
        var classes = ClassTotals()
        var live = 0
        for space in ledger.spaces {
            if space.end == .live { live += 1 }
            if let command = space.identity?.command, excludedCommands.contains(command) { continue }
            guard !space.blocks.isEmpty || space.end == .live else { continue }
            let verdicts = space.lastScan?.verdicts
            var total = BlockTotal()
            for (address, block) in space.blocks {
                let one = BlockTotal(blocks: 1, bytes: block.size)
                total = total + one
                let reachability = verdicts?[address]?.reachability
                classes[reachability] = classes[reachability] + one
            }
            processes.append(Process(pid: space.identity?.pid, command: space.identity?.command, state: space.end.rawValue,
                                     outstanding: total))
        }
        self.init(processes: processes, classes: classes, counters: counters, trackedProcesses: live,
                  journalSamples: journalSamples, trackingSeconds: trackingSeconds)
    }
}
