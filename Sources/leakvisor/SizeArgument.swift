import ArgumentParser

/// A byte size such as 512M, 1G, 1536M or a plain number of MiB.
struct SizeArgument: ExpressibleByArgument, Sendable {
    let bytes: UInt64

    init(bytes: UInt64) { self.bytes = bytes }

    init?(argument: String) {
        let text = argument.uppercased().replacingOccurrences(of: "IB", with: "").replacingOccurrences(of: "B", with: "")
        guard let last = text.last else { return nil }
        let multipliers: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        if let m = multipliers[last] {
            guard let n = UInt64(text.dropLast()), n > 0, n <= (UInt64.max / m) else { return nil }
            bytes = n * m
        } else {
            guard let n = UInt64(text), n > 0, n <= (1 << 24) else { return nil }
            bytes = n << 20
        }
    }

    var defaultValueDescription: String {
        bytes % (1 << 30) == 0 ? "\(bytes >> 30)G" : "\(bytes >> 20)M"
    }
}
