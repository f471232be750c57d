import AllocationTracing

/// The tracker's counts as the metrics name them.
struct TrackerCountsView: Sendable {
    /// The `event` label values of `leakvisor_allocator_events_total`.
    enum Event: String, CaseIterable, Sendable {
        case entry
        case nestedEntry = "nested_entry"
        case `return`
        case release
    }

    let counters: TrackerCounters

    init(_ counters: TrackerCounters) { self.counters = counters }

    subscript(_ event: Event) -> Int {
        switch event {
        case .entry: return counters.entries
        case .nestedEntry: return counters.nestedEntries
        case .return: return counters.returns
        case .release: return counters.releases
        }
    }

    /// Every trap the tracker handled (saturated at `Int.max`).
    var traps: Int {
        [counters.entries, counters.returns, counters.releases, counters.mmapHooks, counters.exitHooks].reduce(0) { total, count in
            let (sum, overflow) = total.addingReportingOverflow(max(0, count))
            return overflow ? Int.max : sum
        }
    }
}
