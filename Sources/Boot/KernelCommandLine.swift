/// A validated kernel command line: printable ASCII words separated by single spaces.
public struct KernelCommandLine: Sendable, Equatable, CustomStringConvertible {
    public private(set) var words: [String] = []

    public init(_ text: String = "") throws(BootError) {
        try append(text)
    }

    /// Appends the space-separated words of `text`.
    public mutating func append(_ text: String) throws(BootError) {
        for scalar in text.unicodeScalars where !(scalar.value >= 0x20 && scalar.value < 0x7F) && scalar != "\t" {
            throw .commandLineInvalid("character U+\(String(scalar.value, radix: 16)) is not printable ASCII")
        }
        words += text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    }

    /// True when some word is `key` or starts with `key=`.
    public func contains(key: String) -> Bool {
        words.contains { $0 == key || $0.hasPrefix(key + "=") }
    }

    public var description: String { words.joined(separator: " ") }

    /// NUL-terminated bytes, checked against the kernel's limit.
    public func encoded(maximum: Int) throws(BootError) -> [UInt8] {
        let bytes = Array(description.utf8)
        guard bytes.count <= maximum else { throw .commandLineTooLong(length: bytes.count, maximum: maximum) }
        return bytes + [0]
    }
}
