import Foundation
import LeakAnalysis

/// A report built from a journal: the stored `LeakReport` of one sample, plus what only the
/// journal knows (which sample, the run's identity, process lifetimes, growth rates). Its JSON is
/// the report's own JSON with one more top-level key, `journal`.
public struct JournalReport: Sendable, Encodable {
    public var report: LeakReport
    public var journal: Context

    /// The journal's part of the report.
    public struct Context: Sendable, Codable, Equatable {
        public var sample: JournalSample
        /// Every sample the journal keeps, oldest first (the points `--at` and `--diff` can name).
        public var samples: [JournalSample]
        public var identity: RunIdentity
        public var processes: [ProcessLifetime]
        public var growthCriteria: GrowthCriteria
        /// Sites whose outstanding bytes grew steadily up to the sample, fastest first.
        public var growth: [GrowthRate]
    }

    /// The report at the latest sample at or before `seconds` (nil: the latest), with growth over
    /// the samples up to it.
    public static func build(from reader: JournalReader, atOrBefore seconds: Double?,
                             criteria: GrowthCriteria = GrowthCriteria()) throws -> JournalReport {
        let sample = try reader.sample(atOrBefore: seconds)
        let samples = try reader.samples()
        let series = try reader.siteSeries(through: sample)
        let descriptions = try reader.describe(series.keys.map(\.siteKey))
        let growth = GrowthRanking.rank(series, sampleTimes: samples.filter { $0.seconds <= sample.seconds }.map(\.seconds),
                                        criteria: criteria, describe: { descriptions[$0] })
        let context = Context(sample: sample, samples: samples, identity: try reader.identity(),
                              processes: try reader.processes(), growthCriteria: criteria, growth: growth)
        return JournalReport(report: try reader.report(of: sample), journal: context)
    }

    public func encode(to encoder: any Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(journal, forKey: .journal)
    }

    enum Key: String, CodingKey { case journal }
}

extension SiteDiff {
    /// What changed per site between the latest samples at or before `from` and `to` (nil: the
    /// latest). A `from` before the first sample compares with nothing: every site is new.
    public static func build(from reader: JournalReader, from: Double, to: Double?) throws -> SiteDiff {
        let b = try reader.sample(atOrBefore: to)
        let a: JournalSample
        do {
            a = try reader.sample(atOrBefore: from)
        } catch JournalError.noSample {
            a = JournalSample(id: 0, seconds: from, unixTime: 0, reason: "start (no sample yet)", final: false, totals: SiteTotals())
        }
        let before = a.id == 0 ? [:] : try reader.siteTotals(of: a)
        let after = try reader.siteTotals(of: b)
        let descriptions = try reader.describe(Set(before.keys).union(after.keys).map(\.siteKey))
        return compare(from: a, before, to: b, after, describe: { descriptions[$0] })
    }
}
