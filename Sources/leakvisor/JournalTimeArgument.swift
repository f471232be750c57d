import ArgumentParser

/// A point of a journal: seconds since tracking started, as 90, 90s, 1500ms, 5m or 1.5h (0 allowed).
struct JournalTimeArgument: ExpressibleByArgument, Sendable, Equatable {
    let seconds: Double

    init(seconds: Double) { self.seconds = seconds }

    init?(argument: String) {
        let text = argument.lowercased()
        var value = Double(text)
        for (suffix, scale) in [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)] as [(String, Double)]
        where value == nil && text.hasSuffix(suffix) {
            value = Double(text.dropLast(suffix.count)).map { $0 * scale }
        }
        guard let value, value.isFinite, value >= 0, value <= 3650 * 86_400 else { return nil }
        seconds = value
    }
}
