import LeakJournal
import Testing

/// The journal's retention: every recent sample, then one per minute, hour and day cell.
@Suite struct SampleThinningTests {
    /// Applies the policy after every new sample, as the writer does.
    func keep(_ times: [Double], finals: Set<Int> = [], policy: SampleThinning = SampleThinning()) -> [SampleThinning.Sample] {
        var kept: [SampleThinning.Sample] = []
        for (index, seconds) in times.enumerated() {
            kept.append(SampleThinning.Sample(id: Int64(index + 1), seconds: seconds, final: finals.contains(index)))
            let dropped = Set(policy.dropped(from: kept))
            kept.removeAll { dropped.contains($0.id) }
        }
        return kept
    }

    @Test func fewSamplesAreAllKept() {
        let times = (0..<64).map { Double($0) }
        #expect(keep(times).count == 64)
        #expect(SampleThinning().dropped(from: times.enumerated().map { .init(id: Int64($0), seconds: $1) }).isEmpty)
    }

    @Test func tenThousandSamplesStayBoundedWithTheNewestFirstAndFinalKept() {
        // One sample a second for 2.8 hours, and a final one.
        let times = (0..<10_000).map { Double($0) }
        let kept = keep(times, finals: [9_999])
        #expect(kept.count <= 64 + 61 + 25 + 2, "kept \(kept.count)")
        #expect(kept.first?.seconds == 0, "the first sample is the baseline of diffs")
        #expect(kept.suffix(64).map(\.seconds) == times.suffix(64), "the newest 64 are all kept")
        #expect(kept.last?.final == true)
        // The last hour (past the recent 64): one sample per minute cell at most, and none missing.
        let hour = kept.dropLast(64).filter { 9_999 - $0.seconds < 3600 }
        let minutes = hour.map { Int($0.seconds / 60) }
        #expect(Set(minutes).count == minutes.count)
        #expect(minutes.count >= 58)
        // Older than an hour: one per hour cell.
        let older = kept.dropFirst().filter { 9_999 - $0.seconds >= 3600 }
        #expect(Set(older.map { Int($0.seconds / 3600) }).count == older.count)
    }

    @Test func aWeekKeepsOneSamplePerDay() {
        // A sample every minute for 7 days.
        let times = stride(from: 0.0, to: 7 * 86_400, by: 60).map { $0 }
        let kept = keep(times)
        #expect(kept.count <= 64 + 61 + 25 + 8 + 1, "kept \(kept.count)")
        let days = kept.dropFirst().filter { times.last! - $0.seconds >= 86_400 }.map { Int($0.seconds / 86_400) }
        #expect(Set(days).count == days.count)
    }

    @Test func finalSamplesAreNeverDropped() {
        let times = (0..<500).map { Double($0) }
        let kept = keep(times, finals: [10, 20, 30])
        #expect(Set(kept.map(\.id)).isSuperset(of: [11, 21, 31]))
    }
}
