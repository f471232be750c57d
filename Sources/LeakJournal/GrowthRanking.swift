import LeakAnalysis

/// When a site's outstanding bytes count as growing steadily over the journal's samples.
public struct GrowthCriteria: Sendable, Codable, Equatable {
    /// Samples from the site's first appearance on (a sample without its blocks counts as 0 bytes).
    public var minimumSamples = 4
    /// Coefficient of determination (R²) of the least-squares line, at least.
    public var minimumFit = 0.8
    /// Share of steps between consecutive samples that do not shrink, at least.
    public var minimumNonShrinking = 0.8

    public init() {}
}

/// A site whose outstanding bytes grow steadily: its least-squares rate and how well a line fits.
public struct GrowthRate: Sendable, Codable, Equatable {
    public var command: String
    public var siteKey: String
    public var function: String
    public var frames: [ReportFrame]
    /// The least-squares slope of outstanding bytes over time, per hour.
    public var bytesPerHour: Double
    public var samples: Int
    public var firstSeconds: Double
    public var lastSeconds: Double
    public var firstBytes: UInt64
    public var lastBytes: UInt64
    /// Of the latest sample's bytes, those definitely or indirectly lost.
    public var leakedBytes: UInt64
    public var fit: Double
    public var nonShrinking: Double
}

/// Ranks sites by steady growth of their outstanding bytes, leaked or not yet.
public enum GrowthRanking {
    /// The slope (per second), R² and share of non-shrinking steps of `points`, or nil with fewer than 2.
    public static func line(_ points: [(x: Double, y: Double)]) -> (slope: Double, fit: Double, nonShrinking: Double)? {
        guard points.count >= 2 else { return nil }
        let n = Double(points.count)
        let meanX = points.map(\.x).reduce(0, +) / n, meanY = points.map(\.y).reduce(0, +) / n
        var sxx = 0.0, sxy = 0.0, syy = 0.0
        for p in points {
            sxx += (p.x - meanX) * (p.x - meanX)
            sxy += (p.x - meanX) * (p.y - meanY)
            syy += (p.y - meanY) * (p.y - meanY)
        }
        guard sxx > 0 else { return nil }
        let slope = sxy / sxx
        let fit = syy > 0 ? (sxy * sxy) / (sxx * syy) : 0
        let steps = zip(points, points.dropFirst())
        let nonShrinking = Double(steps.filter { $1.y >= $0.y }.count) / Double(points.count - 1)
        return (slope, fit, nonShrinking)
    }

    /// The growing sites among `series`, fastest first. `sampleTimes` are the times of every
    /// sample considered (a site absent from one had no block then: 0 bytes).
    public static func rank(_ series: [SiteOfProgram: [(seconds: Double, totals: SiteTotals)]], sampleTimes: [Double],
                            criteria: GrowthCriteria = GrowthCriteria(), describe: (String) -> SiteDescription?) -> [GrowthRate] {
        var rates: [GrowthRate] = []
        for (key, points) in series {
            guard let first = points.first, let last = points.last else { continue }
            var bytes: [Double: UInt64] = [:]
            for point in points { bytes[point.seconds] = point.totals.bytes }
            let xy = sampleTimes.filter { $0 >= first.seconds }.map { (x: $0, y: Double(bytes[$0] ?? 0)) }
            guard xy.count >= criteria.minimumSamples, let line = line(xy), line.slope > 0, line.fit >= criteria.minimumFit,
                  line.nonShrinking >= criteria.minimumNonShrinking, last.totals.bytes > first.totals.bytes else { continue }
            let description = describe(key.siteKey)
            rates.append(GrowthRate(command: key.command, siteKey: key.siteKey,
                                    function: description?.function ?? String(key.siteKey.prefix { $0 != ";" }),
                                    frames: description?.frames ?? [], bytesPerHour: line.slope * 3600, samples: xy.count,
                                    firstSeconds: xy[0].x, lastSeconds: xy[xy.count - 1].x, firstBytes: first.totals.bytes,
                                    lastBytes: last.totals.bytes, leakedBytes: last.totals.leakedBytes, fit: line.fit,
                                    nonShrinking: line.nonShrinking))
        }
        return rates.sorted { ($0.bytesPerHour, $1.command, $1.siteKey) > ($1.bytesPerHour, $0.command, $0.siteKey) }
    }
}
