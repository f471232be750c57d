import ArgumentParser

/// A duration such as 10s, 500ms, 2m or a plain number of seconds.
struct DurationArgument: ExpressibleByArgument, Sendable {
    let seconds: Double

    init(seconds: Double) { self.seconds = seconds }

    init?(argument: String) {
        let text = argument.lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var value: Double?
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let n = Double(text.dropLast(suffix.count)) { value = n * scale }
            break
        }
        if value == nil { value = Double(text) }
        guard let value, value.isFinite, value > 0, value <= 365 * 86_400 else { return nil }
        seconds = value
    }

    var defaultValueDescription: String {
        seconds >= 1 && seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(Int(seconds * 1000))ms"
    }
}
