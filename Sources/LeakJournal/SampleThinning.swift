/// Which samples a journal keeps as it grows: every sample of the newest `recent`, then one per
/// minute for the last hour, one per hour for the last day, one per day before; always the first
/// and every final sample. The kept sample of a grid cell is its latest, and the cells nest
/// (minute in hour in day), so a sample kept at a coarse grid was kept at every finer one.
/// A soak of D days keeps at most `recent` + 60 + 24 + D + 2 samples (plus finals).
public struct SampleThinning: Sendable, Equatable {
    public var recent = 64
    /// (age limit in seconds, cell width in seconds), finest first; past the last: `oldestCell`.
    public var tiers: [(ageBelow: Double, cell: Double)] = [(3600, 60), (86_400, 3600)]
    public var oldestCell: Double = 86_400

    public init() {}

    /// One sample's place in the journal.
    public struct Sample: Sendable, Equatable {
        public var id: Int64
        public var seconds: Double
        public var final: Bool

        public init(id: Int64, seconds: Double, final: Bool = false) {
            self.id = id
            self.seconds = seconds
            self.final = final
        }
    }

    /// The ids of `samples` (any order) to delete.
    public func dropped(from samples: [Sample]) -> [Int64] {
        let ordered = samples.sorted { ($0.seconds, $0.id) < ($1.seconds, $1.id) }
        guard ordered.count > recent, let newest = ordered.last?.seconds else { return [] }
        let older = ordered.dropLast(recent).dropFirst()
        var keptCell: Set<String> = []
        var dropped: [Int64] = []
        // Latest first, so the first sample met in a cell is the one kept.
        for sample in older.reversed() where !sample.final {
            let cell = cellName(age: newest - sample.seconds, seconds: sample.seconds)
            if !keptCell.insert(cell).inserted { dropped.append(sample.id) }
        }
        return dropped
    }

    func cellName(age: Double, seconds: Double) -> String {
        let width = tiers.first { age < $0.ageBelow }?.cell ?? oldestCell
        let index = (seconds / width).rounded(.down)
        return "\(width)/\(index.isFinite ? index : 0)"
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.recent == b.recent && a.oldestCell == b.oldestCell && a.tiers.map(\.ageBelow) == b.tiers.map(\.ageBelow)
            && a.tiers.map(\.cell) == b.tiers.map(\.cell)
    }
}
